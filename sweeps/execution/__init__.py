"""Where and how trials run: the worker spec, the worker loop, the pool of workers and their placements
(processes of this machine, tasks of a Ray cluster), the data shipped to a cluster, and the launcher that picks one."""
