"""What to try and when the study is done: the options, samplers and pruners, the study, everything that
queues a trial (baselines, confirmation, warm start) and the stop rules."""
