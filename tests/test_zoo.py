"""rl-zoo3 and Optuna with MuZero: the commands users type (run in subprocesses of this interpreter, so through
the start-up hook this environment has installed), and the pieces behind them."""

import importlib
import json
import os
import pickle
import subprocess
import sys
import types
from pathlib import Path

import gymnasium as gym
import optuna
import pytest
import yaml
from stable_baselines3.common.env_util import make_atari_env, make_vec_env
from stable_baselines3.common.vec_env import VecFrameStack

from sb3_muzero import MuZero
from sb3_muzero.hyperparams import muzero_settings
from sb3_muzero.zoo import HYPERPARAMS_PATH, convert_muzero_params, hook, registration, sample_muzero_params

ROOT = Path(__file__).resolve().parents[1]
SECTIONS = ("default", "atari", "Acrobot-v1", "MountainCar-v0", "CartPole-v1")
HOOK_MISSING = (
    "rl-zoo3 does not know --algo muzero in this environment: the start-up hook (sb3_muzero_zoo_hook.pth in "
    "site-packages) is missing or broken; install this checkout with `pip install -e .`"
)


def run(args: list[str], cwd: Path, timeout: int = 600, **env: str) -> subprocess.CompletedProcess:
    """``python ARGS`` in ``cwd`` with this interpreter, headless, stdout and stderr together."""
    environment = {key: value for key, value in os.environ.items() if key != hook.DISABLE_VARIABLE}
    environment.update(SDL_VIDEODRIVER="dummy", PYTHONUNBUFFERED="1", **env)
    command = [sys.executable, *args]
    return subprocess.run(
        command, cwd=cwd, env=environment, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, timeout=timeout
    )


def check(result: subprocess.CompletedProcess) -> str:
    if "invalid choice: 'muzero'" in result.stdout:
        pytest.fail(f"{HOOK_MISSING}\n{result.stdout[-3000:]}")
    assert result.returncode == 0, result.stdout[-6000:]
    return result.stdout


def python_json(code: str, cwd: Path, **env: str) -> dict:
    """Run ``code`` in a fresh interpreter, in ``cwd`` (not the checkout: the installed package is under test).

    ``code`` prints one JSON object as its last line.
    """
    return json.loads(check(run(["-c", code], cwd=cwd, **env)).strip().splitlines()[-1])


# --- the start-up hook --------------------------------------------------------------------------------


def test_start_up_installs_only_the_finder(tmp_path):
    state = python_json(
        "import json, sys; print(json.dumps(dict(heavy=sorted({'torch', 'sb3_muzero', 'rl_zoo3'} & set(sys.modules)),"
        " finders=sum(getattr(f, '_sb3_muzero_zoo_hook', False) for f in sys.meta_path))))",
        tmp_path,
    )
    assert state["finders"] == 1, HOOK_MISSING
    assert state["heavy"] == []


def test_rl_zoo3_sees_muzero_its_sampler_and_keeps_its_own_algorithms(tmp_path):
    state = python_json(
        "import json; from rl_zoo3.exp_manager import ExperimentManager; from rl_zoo3.utils import ALGOS;"
        "from rl_zoo3.hyperparams_opt import HYPERPARAMS_SAMPLER as S, HYPERPARAMS_CONVERTER as C;"
        "print(json.dumps(dict(algo=ALGOS.get('muzero').__module__ if 'muzero' in ALGOS else None, others='ppo' in ALGOS,"
        " sampler=getattr(S.get('muzero'), '__name__', None), converter=getattr(C.get('muzero'), '__name__', None))))",
        tmp_path,
    )
    assert state["algo"] == "sb3_muzero.muzero.muzero", HOOK_MISSING
    assert state["others"] and (state["sampler"], state["converter"]) == ("sample_muzero_params", "convert_muzero_params")


def test_the_hook_can_be_switched_off(tmp_path):
    state = python_json(
        "import json; from rl_zoo3.utils import ALGOS; print(json.dumps(dict(muzero='muzero' in ALGOS)))",
        tmp_path,
        **{hook.DISABLE_VARIABLE: "0"},
    )
    assert state == dict(muzero=False)


def test_without_rl_zoo3_python_and_the_package_still_work(tmp_path):
    state = python_json(
        "import json, sys; sys.modules['rl_zoo3'] = None\n"
        "try:\n    import rl_zoo3.utils\nexcept ImportError as e:\n    plain = type(e).__name__\n"
        "import sb3_muzero.zoo as zoo; zoo.register_loaded()\n"
        "try:\n    zoo.register()\nexcept ImportError as e:\n    message = str(e)\n"
        "print(json.dumps(dict(plain=plain, message=message)))",
        tmp_path,
    )
    assert state["plain"] == "ModuleNotFoundError"
    assert "pip install 'sb3-muzero[zoo]'" in state["message"]


def test_the_finder_registers_after_the_watched_module_ran_and_delegates_to_its_loader(tmp_path, monkeypatch):
    (tmp_path / "watched_pkg").mkdir()
    (tmp_path / "watched_pkg" / "__init__.py").write_text("")
    (tmp_path / "watched_pkg" / "mod.py").write_text("VALUE = 42\n")
    calls = []
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.setattr(hook, "WATCHED", frozenset({"watched_pkg.mod"}))
    monkeypatch.setattr(hook, "_register", lambda name: calls.append((name, sys.modules[name].VALUE)))
    monkeypatch.setattr(sys, "meta_path", [hook.ZooRegistrationFinder(), *sys.meta_path])
    module = importlib.import_module("watched_pkg.mod")
    importlib.import_module("watched_pkg.mod")
    assert calls == [("watched_pkg.mod", 42)]
    assert module.__loader__.get_source("watched_pkg.mod") == "VALUE = 42\n"
    importlib.import_module("watched_pkg")  # not watched: the finder leaves it to the others
    assert len(calls) == 1
    for name in ("watched_pkg.mod", "watched_pkg"):
        sys.modules.pop(name)


def test_install_and_register_are_idempotent(monkeypatch):
    monkeypatch.setattr(sys, "meta_path", [finder for finder in sys.meta_path if not getattr(finder, hook.MARKER, False)])
    monkeypatch.delenv(hook.DISABLE_VARIABLE, raising=False)
    hook.install()
    hook.install()
    assert sum(getattr(finder, hook.MARKER, False) for finder in sys.meta_path) == 1
    registration.register()
    registration.register()
    from rl_zoo3.exp_manager import ExperimentManager
    from rl_zoo3.utils import ALGOS

    assert ALGOS["muzero"] is MuZero
    for method in (
        ExperimentManager.__init__,
        ExperimentManager.create_callbacks,
        ExperimentManager.hyperparameters_optimization,
        ExperimentManager._preprocess_action_noise,
    ):
        assert getattr(method, registration.MARKER) and not getattr(method.__wrapped__, registration.MARKER, False)


@pytest.mark.parametrize(
    "argv, typed",
    [
        (["--num-threads", "2"], True),
        (["--num-threads=2"], True),
        (["--num-t", "2"], True),
        (["--n-timesteps", "5"], False),
        (["-n", "5"], False),
        (["--", "--num-threads"], False),
    ],
)
def test_an_option_counts_as_typed_when_argparse_would_take_it(argv, typed):
    assert registration._typed("--num-threads", argv) is typed


# --- the hyperparameter file and the sampler ----------------------------------------------------------------


def load_sections() -> dict:
    return yaml.safe_load(HYPERPARAMS_PATH.read_text())


@pytest.mark.parametrize(
    "n_timesteps, n_envs, eval_freq",
    [(100, 8, 80), (800, 8, 80), (20_000, 8, 2_000), (1_000_000, 8, 25_000), (50, 8, 25_000), (100, 1, 10)],
)
def test_evaluations_default_to_ten_per_run_at_least_ten_vector_steps_apart(monkeypatch, n_timesteps, n_envs, eval_freq):
    monkeypatch.setattr(sys, "argv", ["train.py", "--algo", "muzero"])
    manager = types.SimpleNamespace(algo="muzero", n_timesteps=n_timesteps, n_envs=n_envs, eval_freq=25_000,
                                    optimize_hyperparameters=False, verbose=0)  # fmt: skip
    registration._apply_evaluation_default(manager)
    assert manager.eval_freq == eval_freq  # rl-zoo3 then evaluates every max(eval_freq // n_envs, 1) vector steps


def test_the_package_and_the_checkout_share_one_hyperparameter_file():
    assert HYPERPARAMS_PATH.is_file()
    checkout_copy = ROOT / "hyperparams" / "muzero.yml"
    if checkout_copy.exists() and (ROOT / "sb3_muzero" / "hyperparams").exists():
        assert (ROOT / "sb3_muzero" / "hyperparams" / "muzero.yml").resolve() == checkout_copy.resolve()
    assert set(SECTIONS) <= set(load_sections())


@pytest.mark.parametrize("name, env_id", [("default", "CartPole-v1"), *((env_id, env_id) for env_id in SECTIONS[2:])])
def test_every_classic_control_section_builds_a_model(name, env_id):
    settings = muzero_settings("Pendulum-v1" if name == "default" else env_id, HYPERPARAMS_PATH)
    assert settings.section == name
    model = MuZero(settings.policy, make_vec_env(env_id, n_envs=2), **settings.kwargs)
    assert model.num_simulations == load_sections()[name].get("num_simulations", 50)


def test_the_atari_section_builds_a_model_on_stacked_frames():
    import ale_py

    gym.register_envs(ale_py)
    settings = muzero_settings("BreakoutNoFrameskip-v4", HYPERPARAMS_PATH)
    assert settings.env_options["env_wrapper"] == ["stable_baselines3.common.atari_wrappers.AtariWrapper"]
    env = VecFrameStack(make_atari_env("BreakoutNoFrameskip-v4", n_envs=1), n_stack=settings.env_options["frame_stack"])
    model = MuZero(settings.policy, env, **settings.kwargs)
    assert model.replay_buffer.frame_stack == settings.env_options["frame_stack"]


def test_the_sampler_samples_what_matters_for_muzero_and_the_converter_reproduces_it():
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=0))
    trial = study.ask()
    hyperparams = sample_muzero_params(trial, n_actions=2, n_envs=1, additional_args={})
    names = "learning_rate batch_size num_simulations td_steps num_unroll_steps replay_ratio gamma temperature_initial"
    names += " reanalyse_ratio policy_target_smoothing"
    assert {*names.split(), "temperature_final", "temperature_fraction"} <= set(hyperparams)
    assert set(hyperparams["policy_kwargs"]) == {"net_arch", "latent_dim"}
    assert convert_muzero_params(trial.params) == hyperparams
    model = MuZero("MlpPolicy", make_vec_env("CartPole-v1", n_envs=1), **hyperparams)
    assert model.gamma == hyperparams["gamma"] and model.policy.latent_dim == hyperparams["policy_kwargs"]["latent_dim"]


def test_gumbel_and_reanalyse_settings_are_yml_keys(tmp_path):
    """A hyperparameter file's section may choose the search and its settings, and reanalyse, as any MuZero argument."""
    section = "CartPole-v1:\n  policy: MlpPolicy\n  n_timesteps: 100\n  search_algorithm: gumbel\n"
    section += "  max_considered_actions: 4\n  gumbel_c_visit: 25.0\n  gumbel_c_scale: 0.2\n  gumbel_min_q_range: 0.5\n"
    section += "  num_simulations: 4\n  reanalyse_ratio: 0.25\n  reanalyse_age_per_td_step: 500\n"
    section += "  policy_target_smoothing: 0.1\n"
    (tmp_path / "muzero.yml").write_text(section)
    settings = muzero_settings("CartPole-v1", tmp_path / "muzero.yml")
    model = MuZero(settings.policy, "CartPole-v1", **settings.kwargs)
    expected = dict(search_algorithm="gumbel", max_considered_actions=4, gumbel_c_visit=25.0, gumbel_c_scale=0.2,
                    gumbel_min_q_range=0.5)  # fmt: skip
    assert {key: getattr(model.policy.search_settings, key) for key in expected} == expected
    assert (model.reanalyse_ratio, model.reanalyse_age_per_td_step, model.policy_target_smoothing) == (0.25, 500, 0.1)


@pytest.mark.parametrize("algorithm", ["puct", "gumbel"])
def test_the_sampler_samples_gumbel_settings_for_gumbel_trials_only(algorithm):
    values = dict(learning_rate=1e-3, batch_size=32, replay_ratio=0.5, num_simulations=8, search_algorithm=algorithm,
                  num_unroll_steps=3, td_steps=5, reanalyse_ratio=0.5, policy_target_smoothing=0.1, one_minus_gamma=0.01,
                  temperature_initial=1.0, temperature_final=0.2, temperature_fraction=0.5, net_arch="small", latent_dim=32,
                  max_considered_actions=4, gumbel_c_visit=25.0, gumbel_c_scale=0.05, gumbel_min_q_range=0.1)  # fmt: skip
    trial = optuna.trial.FixedTrial(values)
    hyperparams = sample_muzero_params(trial)
    gumbel_keys = {"max_considered_actions", "gumbel_c_visit", "gumbel_c_scale", "gumbel_min_q_range"}
    assert (gumbel_keys <= set(hyperparams)) == (algorithm == "gumbel") and not (gumbel_keys & set(hyperparams)) == (
        algorithm == "gumbel"
    )
    model = MuZero("MlpPolicy", make_vec_env("CartPole-v1", n_envs=1), **hyperparams)
    expected = {key: values[key] for key in gumbel_keys} if algorithm == "gumbel" else dict(
        max_considered_actions=16, gumbel_c_visit=50.0, gumbel_c_scale=0.1, gumbel_min_q_range=1.0
    )  # fmt: skip
    assert model.search_settings.search_algorithm == algorithm and model.reanalyse_ratio == 0.5
    assert model.policy_target_smoothing == 0.1
    assert {key: getattr(model.search_settings, key) for key in gumbel_keys} == expected


def test_for_cnn_policy_the_sampler_samples_channels_and_keeps_the_files_policy_kwargs():
    trial = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=0)).ask()
    hyperparams = sample_muzero_params(trial, policy="CnnPolicy", policy_kwargs=dict(channels=32, num_blocks=2))
    assert set(hyperparams["policy_kwargs"]) == {"channels", "num_blocks"} and hyperparams["policy_kwargs"]["num_blocks"] == 2
    assert "net_arch" not in trial.params and hyperparams["policy_kwargs"]["channels"] == trial.params["channels"]


def test_a_saved_model_loads_without_an_env_as_rl_zoo3_enjoy_loads_it(tmp_path):
    model = MuZero("MlpPolicy", "CartPole-v1", num_simulations=4, policy_kwargs=dict(net_arch=[16], latent_dim=8))
    model.save(tmp_path / "model")
    loaded = MuZero.load(tmp_path / "model")
    observation = gym.make("CartPole-v1").reset(seed=0)[0]
    assert loaded.predict(observation, deterministic=True)[0] == model.predict(observation, deterministic=True)[0]


@pytest.mark.slow
def test_the_readme_optuna_example_runs():
    readme = (ROOT / "README.md").read_text()
    (example,) = [block for block in readme.split("```python\n")[1:] if "PruningEvalCallback" in block]
    code = example.split("```")[0]
    assert "N_TRIALS, N_TIMESTEPS = 8, 20_000" in code
    namespace: dict = {"__name__": "readme_example"}
    exec(code.replace("N_TRIALS, N_TIMESTEPS = 8, 20_000", "N_TRIALS, N_TIMESTEPS = 2, 600"), namespace)
    study = namespace["study"]
    assert len(study.trials) == 2 and all(len(trial.intermediate_values) >= 2 for trial in study.trials)


# --- the commands, as typed (with small budgets) ---------------------------------------------------------------


def zoo(command: str, cwd: Path, **env: str) -> subprocess.CompletedProcess:
    """``python -m rl_zoo3.COMMAND`` (``sb3_muzero.COMMAND`` for ``command`` "sb3_muzero.train ...")."""
    script, *arguments = command.split()
    return run(["-m", script if "." in script else f"rl_zoo3.{script}", *arguments], cwd=cwd, **env)


@pytest.fixture(scope="module")
def cartpole_run(tmp_path_factory) -> tuple[Path, str]:
    """``python -m rl_zoo3.train --algo muzero --env CartPole-v1`` for 800 steps; its folder and output."""
    folder = tmp_path_factory.mktemp("zoo-cartpole")
    output = check(zoo("train --algo muzero --env CartPole-v1 -n 800 --eval-episodes 2 --seed 0", cwd=folder))
    return folder, output


@pytest.mark.slow
def test_train_reads_the_package_hyperparameters_and_evaluates(cartpole_run):
    folder, output = cartpole_run
    assert f"Loading hyperparameters from: {HYPERPARAMS_PATH}" in output
    assert output.count("Eval num_timesteps=") == 10  # MuZero's default, in runs shorter than 25,000 steps too
    assert "MuZero default: torch on 1 thread(s)" in output
    saved = yaml.load((folder / "logs/muzero/CartPole-v1_1/CartPole-v1/config.yml").read_text(), Loader=yaml.UnsafeLoader)
    assert dict(saved) == load_sections()["CartPole-v1"]  # what rl-zoo3 used: the file's section
    assert (folder / "logs/muzero/CartPole-v1_1/CartPole-v1.zip").is_file()


@pytest.mark.slow
def test_enjoy_plays_the_trained_model(cartpole_run):
    folder, _ = cartpole_run
    output = check(zoo("enjoy --algo muzero --env CartPole-v1 -f logs/ -n 100", cwd=folder))
    assert "Loading logs/muzero/CartPole-v1_1/CartPole-v1.zip" in output  # then 100 rendered steps, headless


@pytest.mark.slow
def test_record_video_records_the_trained_model(cartpole_run):
    folder, _ = cartpole_run
    check(zoo("record_video --algo muzero --env CartPole-v1 -f logs/ -n 100", cwd=folder))
    assert list((folder / "logs/muzero/CartPole-v1_1/videos").glob("*.mp4"))


@pytest.mark.slow
def test_train_continues_a_trained_agent(cartpole_run):
    folder, _ = cartpole_run
    trained = "logs/muzero/CartPole-v1_1/CartPole-v1.zip"
    arguments = f"-i {trained} -n 200 --eval-freq -1 --seed 1 -params learning_starts:100"
    output = check(zoo(f"train --algo muzero --env CartPole-v1 {arguments}", cwd=folder))
    assert "Loading pretrained agent" in output
    continued = MuZero.load(folder / "logs/muzero/CartPole-v1_2/CartPole-v1.zip")
    assert continued.num_timesteps == 200 and continued._n_updates > MuZero.load(folder / trained)._n_updates


@pytest.mark.slow
def test_optimize_runs_a_study_with_the_muzero_sampler_and_reports_for_pruning(tmp_path):
    command = "train --algo muzero --env CartPole-v1 -optimize --n-trials 2 -n 600 --sampler tpe --pruner median"
    output = check(zoo(f"{command} --eval-episodes 2 --seed 0", cwd=tmp_path))
    assert "Best trial:" in output and "num_simulations:" in output
    (report,) = (tmp_path / "logs/muzero").glob("report_CartPole-v1_2-trials-600-tpe-median_*.pkl")
    with open(report, "rb") as file:
        study = pickle.load(file)
    assert len(study.trials) == 2
    sampled = {"num_simulations", "td_steps", "num_unroll_steps", "replay_ratio", "one_minus_gamma", "net_arch"}
    for trial in study.trials:
        assert sampled <= set(trial.params)
        assert len(trial.intermediate_values) >= 2  # evaluations reported during the trial, which pruning needs
        assert "'support_size': 20" in trial.user_attrs["policy_kwargs"]  # the file's policy_kwargs, plus the sampled


@pytest.mark.slow
def test_breakout_trains_with_the_atari_section(tmp_path):
    command = "train --algo muzero --env BreakoutNoFrameskip-v4 -n 400 --eval-freq -1 -params learning_starts:200"
    output = check(zoo(f"{command} --seed 0", cwd=tmp_path))
    assert f"Loading hyperparameters from: {HYPERPARAMS_PATH}" in output and "Stacking 4 frames" in output
    assert "MuZero default: torch on" not in output  # the convolutions keep torch's threads
    model = MuZero.load(tmp_path / "logs/muzero/BreakoutNoFrameskip-v4_1/BreakoutNoFrameskip-v4.zip", buffer_size=1)
    assert model.policy.features_extractor.__class__.__name__ == "StridedEncoder" and model.policy.channels == 32
    assert model._n_updates > 0  # (400 - 200) env steps x replay_ratio 0.125


@pytest.mark.slow
def test_sb3_muzero_train_needs_no_hook_and_rl_zoo3_train_needs_it(tmp_path):
    arguments = "--algo muzero --env CartPole-v1 -n 300 --eval-freq -1 -params learning_starts:100"
    off = {hook.DISABLE_VARIABLE: "0"}
    check(zoo(f"sb3_muzero.train {arguments}", cwd=tmp_path, **off))
    assert (tmp_path / "logs/muzero/CartPole-v1_1/CartPole-v1.zip").is_file()
    without_hook = zoo(f"train {arguments}", cwd=tmp_path, **off)
    assert without_hook.returncode != 0 and "invalid choice: 'muzero'" in without_hook.stdout


# python -m sb3_muzero.push_to_hub (rl-zoo3's push_to_hub) with the Hub's three calls replaced: create_repo and
# snapshot_download make an empty local repository folder, upload_folder writes what it would upload to a JSON file.
OFFLINE_PUSH_TO_HUB = """
import json, runpy, sys
from pathlib import Path
from huggingface_hub import HfApi

uploaded = Path(sys.argv.pop(1))

def create_repo(self, repo_id, **kwargs):
    return f"https://huggingface.co/{repo_id}"

def snapshot_download(self, repo_id, local_dir, **kwargs):
    Path(local_dir).mkdir(parents=True, exist_ok=True)
    return str(local_dir)

def upload_folder(self, repo_id, folder_path, commit_message, **kwargs):
    files = sorted(p.relative_to(folder_path).as_posix() for p in Path(folder_path).rglob("*") if p.is_file())
    uploaded.write_text(json.dumps(dict(repo_id=repo_id, folder=str(folder_path), files=files)))

HfApi.create_repo, HfApi.snapshot_download, HfApi.upload_folder = create_repo, snapshot_download, upload_folder
runpy.run_module("sb3_muzero.push_to_hub", run_name="__main__", alter_sys=True)
"""


@pytest.mark.slow
def test_push_to_hub_prepares_the_model_card_video_and_files_offline(cartpole_run, tmp_path):
    """Everything before the upload: the model and its unzipped files, the configs, the evaluation, a replay video
    and the model card (the video needs an ffmpeg on the PATH: imageio-ffmpeg's, which moviepy brings)."""
    import imageio_ffmpeg

    folder, _ = cartpole_run
    (tmp_path / "bin").mkdir()
    (tmp_path / "bin" / "ffmpeg").symlink_to(imageio_ffmpeg.get_ffmpeg_exe())
    uploaded = tmp_path / "uploaded.json"
    arguments = "--algo muzero --env CartPole-v1 -f logs/ --exp-id 1 -orga sb3-muzero-tests -n 60"  # the run of cartpole_run
    output = check(run(["-c", OFFLINE_PUSH_TO_HUB, str(uploaded), *arguments.split()], cwd=folder,
                       PATH=f"{tmp_path / 'bin'}:{os.environ['PATH']}"))  # fmt: skip
    assert "Loading logs/muzero/CartPole-v1_1/CartPole-v1.zip" in output
    upload = json.loads(uploaded.read_text())
    assert upload["repo_id"] == "sb3-muzero-tests/muzero-CartPole-v1"
    repository = folder / upload["folder"]
    expected = {"README.md", "muzero-CartPole-v1.zip", "args.yml", "config.yml", "env_kwargs.yml", "results.json",
                "train_eval_metrics.zip", "replay.mp4", "muzero-CartPole-v1/policy.pth"}  # fmt: skip
    assert expected <= set(upload["files"]), upload["files"]
    card = (repository / "README.md").read_text()
    results = json.loads((repository / "results.json").read_text())
    assert "# **MuZero** Agent playing **CartPole-v1**" in card and "python -m rl_zoo3.train --algo muzero" in card
    assert f"value: {results['mean_reward']:.2f} +/- {results['std_reward']:.2f}" in card  # the metadata: the evaluation
    assert results["n_eval_episodes"] == 10 and results["is_deterministic"]
    assert MuZero.load(repository / "muzero-CartPole-v1.zip").num_timesteps == 800
    assert (repository / "replay.mp4").stat().st_size > 1000


def test_atari_training_prints_progress_within_30_seconds(tmp_path):
    """``python -m rl_zoo3.train --algo muzero --env BreakoutNoFrameskip-v4`` (a tiny network, so that the check is about
    the output, not the speed): progress lines with env steps and env steps per second come within 30 s."""
    import re
    import time

    command = [sys.executable, "-m", "rl_zoo3.train", "--algo", "muzero", "--env", "BreakoutNoFrameskip-v4", "-n", "100000",
               "--eval-freq", "-1", "--num-threads", "1", "-params", "n_envs:2", "num_simulations:2", "buffer_size:2000",
               "learning_starts:200", "policy_kwargs:dict(encoder='strided', channels=4, num_blocks=0)"]  # fmt: skip
    environment = {key: value for key, value in os.environ.items() if key != hook.DISABLE_VARIABLE}
    start = time.monotonic()
    process = subprocess.Popen(command, cwd=tmp_path, env={**environment, "PYTHONUNBUFFERED": "1"},
                               stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)  # fmt: skip
    progress = []
    try:
        for line in process.stdout:
            if re.fullmatch(r"\s+[\d,]+ env steps\s+\S+ env steps/s\s+\d+ s\s+.*", line.rstrip()):
                progress.append(time.monotonic() - start)
            if len(progress) == 2 or time.monotonic() - start > 30:
                break
    finally:
        process.kill()
        process.wait()
    assert len(progress) == 2 and progress[-1] <= 30, progress
