"""The keys of everything the sweep writes and the report, ``status``, ``predict`` and ``reproduce`` read, named once.

An Optuna study per space (and engine, and quick smoke runs) holds each trial's params, value and the trial
attributes below; MLflow holds one run per sweep, trial and repeat, tagged with the keys below. Writers and
readers import these names; no key is spelled anywhere else.
"""

from __future__ import annotations

# Quick smoke runs (``--quick``): a seeded sample of the training set, at most this many epochs and trials.
QUICK = {"subset": 6000, "epochs": 2, "trials": 2}
ENGINES = ("optuna", "kerastuner")


def study_name(space: str, quick: bool = False, engine: str = "optuna") -> str:
    """The study of a space: each engine, and quick smoke runs, get their own so they never mix."""
    return space + ("-kerastuner" if engine == "kerastuner" else "") + ("-quick" if quick else "")


def study_of(name: str) -> tuple[str, bool, str]:
    """The space, whether quick, and the engine of study ``name`` (the inverse of :func:`study_name`)."""
    quick = name.endswith("-quick")
    base = name.removesuffix("-quick")
    engine = "kerastuner" if base.endswith("-kerastuner") else "optuna"
    return base.removesuffix("-kerastuner"), quick, engine


# Study attributes: the space file a study runs with, recorded when it is opened.
SPACE = "space"  # the space's name
SPACE_YAML = "space_yaml"  # the file's text, so a report can be built without the file
SPACE_SHA = "space_sha"
QUICK_STUDY = "quick"  # True for a smoke-run study
ENGINE = "engine"  # optuna | kerastuner
TRAIN_SUBSET = "train_subset"  # the training sample its trials used (None: every training row)
TRAINED_ON = "data_md5"  # the fingerprint of the data its trials trained on (the runs' tag DATA_MD5)
INPUT_SCALE = "input_scale"  # what the data's raw inputs are multiplied by before the model (None: as they are)


def engine_of(study: str, attrs: dict) -> str:
    """A study's engine (studies from before the attribute was recorded are told by their name)."""
    return attrs.get(ENGINE) or ("kerastuner" if study.removesuffix("-quick").endswith("-kerastuner") else "optuna")


# Trial attributes.
WORKER = "worker"  # host:pid of the process training it (a dead one's trials are failed)
NODE = "node"  # the machine training it (a Ray node's id on a cluster, else the host name)
TASK = "task"  # the cluster task whose worker trains it (a lost task's trials are retried at once)
MLFLOW_RUN_ID = "mlflow_run_id"
STOP_REASONS = "stop_reasons"  # one per repeat: max_epochs, early_stopped, time_budget, pruned, nan_loss, error
VALUE_STD = "value_std"  # spread of the objective over the repeats
FOLDS_TRAINED = "folds_trained"  # a kfold trial's folds trained (fewer than its folds: pruned across folds)
TEST_ACCURACY_MEAN = "test_accuracy_mean"
TEST_MAE_MEAN = "test_mae_mean"  # a regression's
FAIL_REASON = "fail_reason"
EPOCH_TIME = "epoch_time_s"  # mean seconds per epoch (what a next trial's epoch may cost)
EPOCH_BUDGET = "epoch_budget"  # a cheaper epoch budget than the space's: a baseline's, a Hyperband round's
BASELINE = "baseline"  # a baseline's place (1, 2, …) in its space file's sweep.baselines: not the sampler's pick
CONFIRMS = "confirms"  # a confirmation trial: the number of the winner whose params it trains on new seeds
WARM_FROM = "warm_start_from"  # a trial copied from an earlier study (sweep.warm_start): "STUDY#NUMBER"
EXCLUDED = "excluded"  # a study's: trials kept out of best by hand (sweep exclude), number -> reason
QUEUED_BY_HAND = "queued_by_hand"  # a trial's params given by hand (sweep enqueue): True
WARM_STARTED = "warm_started"  # a study's: the study its finished trials were copied from, and how many
SEEDS = "seeds"  # a trial's own seeds, when not the space's (a confirmation's)
BASELINE_FIXED = "baseline_fixed"  # a baseline's model settings in place of the space's fixed ones
INITIAL_EPOCH = "initial_epoch"  # a Hyperband promotion: continued an earlier trial's weights from this epoch
KERASTUNER_TRIAL = "kerastuner_trial"  # the Keras Tuner trial id an Optuna trial trained (found again on promotion)
REJECTED = "rejected"  # the constraints on params its config broke: never trained, not counted toward TRIALS

# MLflow run tags.
KIND = "sweeps.kind"  # one of the run kinds below
STUDY = "sweeps.study"
TRIAL = "sweeps.trial"  # the Optuna trial number
SEED = "sweeps.seed"
FOLD = "sweeps.fold"  # the fold a kfold trial's repeat run validated on (0-based)
STATE = "sweeps.state"  # the trial's final state: COMPLETE, PRUNED, FAIL
STOP_REASON = "sweeps.stop_reason"
RUN_SPACE_SHA = "sweeps.space_sha"
GIT_COMMIT = "mlflow.source.git.commit"  # MLflow's own key: its UI shows the commit
RUN_ENGINE = "sweeps.engine"
DATA_MD5 = "sweeps.data_md5"
VALIDATION = "sweeps.validation"
RUN_WORKER = "sweeps.worker"  # host:pid of the process that opened a sweep run
CONTINUES = "sweeps.continues"  # a trial run continued by a later trial: the trial numbers it ran under before
RESUMED_AT = "sweeps.resumed_at_epoch"  # the epoch after which a continued repeat went on
CONFIRMS_TRIAL = "sweeps.confirms"  # a confirmation's trial run: the winner whose params it trains on new seeds
RUN_NODE = "sweeps.node"  # the machine a trial trained on (its Ray node's id on a cluster, else the host name)
GPUS_UNSEEN = "sweeps.gpus_unseen"  # on a sweep run: GPUs were asked for and TensorFlow in a worker saw none (warned once)
PARENT = "mlflow.parentRunId"

# Tags of a registered model version (the model is named after its study).
MODEL_TRIAL, MODEL_SEED, MODEL_SOURCE_RUN, MODEL_VALUE = "trial", "seed", "source_run", "value"
MODEL_REFIT = "refit"  # "true" on a version trained again on training + validation images (sweep refit)
MODEL_EXCLUDED = "excluded"  # on a version whose trial was excluded by hand (sweep exclude): the reason
BEST_ALIAS = "best"  # the registered model's alias of the version of the study's best trial (models:/STUDY@best)

# Run kinds.
SWEEP_RUN, TRIAL_RUN, REPEAT_RUN, REPRODUCTION_RUN, REFIT_RUN = "sweep", "trial", "repeat", "reproduction", "refit"

# MLflow run statuses: how a trial ended → the status of its runs; a run whose process was interrupted or died is
# KILLED.
FINISHED, FAILED, INTERRUPTED = "FINISHED", "FAILED", "KILLED"
RUN_STATUS = {"COMPLETE": FINISHED, "PRUNED": FINISHED, "FAIL": FAILED}
