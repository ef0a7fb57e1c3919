"""Self-play actors on Ray (``MuZero(..., actors=N)``, ``sb3_muzero.distributed``).

In-process first (the actor's chunks against the env replayed with their actions, the envs that cannot be shipped),
then on one local Ray instance that MuZero starts itself (two actors training, an actor killed mid-run, save/load
across single-process and distributed runs, a learner killed mid-run), then on a cluster of a head node and two
worker nodes made with ``ray.cluster_utils.Cluster`` on this machine.
"""

import functools
import os
import re
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pytest
from stable_baselines3.common.callbacks import BaseCallback
from stable_baselines3.common.env_util import make_vec_env
from stable_baselines3.common.monitor import Monitor
from stable_baselines3.common.vec_env import DummyVecEnv, VecNormalize

from sb3_muzero import MuZero, latest_checkpoint
from sb3_muzero.distributed.actor import ActorSpec, SelfPlayActor, policy_weights
from sb3_muzero.distributed.chunk import add_chunk
from tests.helpers import SMALL

ray = pytest.importorskip("ray", reason="the distributed extra: pip install -e '.[distributed]'")

REPOSITORY = Path(__file__).resolve().parents[1]
# Two envs per actor, chunks of 8 vector steps (16 env steps), 4 gradient steps per chunk once training starts.
DISTRIBUTED = dict(SMALL, actors=2, chunk_steps=8, weight_sync_interval=4, buffer_size=5000)


def cartpole(n_envs: int = 2, seed: int = 0):
    return make_vec_env("CartPole-v1", n_envs=n_envs, seed=seed)


class EpisodeRecorder(BaseCallback):
    """Collects the episodes the envs reported (Monitor's ``episode`` infos) as the learner saw them, and the names
    of the values logged."""

    def __init__(self):
        super().__init__()
        self.lengths: list[int] = []
        self.returns: list[float] = []
        self.logged: set[str] = set()

    def _on_step(self) -> bool:
        for info in self.locals["infos"]:
            if "episode" in info:
                self.lengths.append(int(info["episode"]["l"]))
                self.returns.append(float(info["episode"]["r"]))
        return True

    def _on_rollout_end(self) -> None:
        self.logged.update(self.model.logger.name_to_value)


def assert_whole_consistent_episodes(replay, recorder: EpisodeRecorder) -> None:
    """Every episode in the replay is an unbroken chain of steps 0, 1, 2, ... linked both ways, and its finished
    episodes are exactly those the envs reported, with their lengths and returns (nothing lost or added)."""
    size = replay.size
    previous, following = replay.previous_slot[:size], replay.next_slot[:size]
    step, episode = replay.step_in_episode[:size], replay.episode_id[:size]
    linked = previous >= 0
    assert np.array_equal(linked, step > 0), "a step after the first of its episode has no link to the one before"
    assert np.array_equal(step[previous[linked]] + 1, step[linked])
    assert np.array_equal(episode[previous[linked]], episode[linked])
    assert np.array_equal(following[previous[linked]], np.flatnonzero(linked))
    ends = np.flatnonzero(replay.terminated[:size] | replay.truncated[:size])
    lengths = step[ends] + 1
    returns = [float(replay.rewards[:size][episode == episode[end]].sum()) for end in ends]
    assert sorted(lengths.tolist()) == sorted(recorder.lengths)
    np.testing.assert_allclose(sorted(returns), sorted(recorder.returns), rtol=1e-6)


# --- in this process --------------------------------------------------------------------------------


def test_an_actors_chunks_are_the_steps_its_envs_made():
    """Two chunks of an actor run in this process: replaying its env from the same seed with the chunk's actions gives
    the chunk's observations, rewards and episode ends; the second chunk continues the first."""
    model = MuZero("MlpPolicy", cartpole(), seed=0, **SMALL)
    spec = ActorSpec(functools.partial(make_vec_env, "CartPole-v1", n_envs=2), model.policy_factory(), "raise")
    actor = SelfPlayActor(spec, index=1, seed=5)
    weights = policy_weights(model.policy)
    chunks = [actor.collect(30, temperature=1.0, timestep=0, weights_version=7, weights=weights) for _ in range(2)]
    for name, tensor in actor.policy.state_dict().items():
        assert np.array_equal(tensor.numpy(), model.policy.state_dict()[name].numpy()), name
    assert [chunk.fresh_start for chunk in chunks] == [True, False]
    assert {(chunk.actor, chunk.weights_version, chunk.steps.actions.shape) for chunk in chunks} == {(1, 7, (30, 2))}

    reference = make_vec_env("CartPole-v1", n_envs=2, seed=5)
    observation = reference.reset()
    for chunk in chunks:
        for t in range(chunk.num_steps):
            np.testing.assert_array_equal(chunk.steps.observations[t], observation)
            observation, rewards, dones, _ = reference.step(chunk.steps.actions[t])
            np.testing.assert_array_equal(chunk.steps.rewards[t], rewards)
            np.testing.assert_array_equal(chunk.dones(t), dones)
    np.testing.assert_allclose(chunks[0].steps.policies.sum(axis=2), 1.0, rtol=1e-6)
    assert sum(chunk.dones(t).sum() for chunk in chunks for t in range(30)) > 0  # episodes ended inside the chunks

    replay = model.replay_buffer
    replay.start_new_episodes(4)
    recorder = EpisodeRecorder()
    for chunk in chunks:
        add_chunk(replay, chunk, np.array([2, 3]))
        recorder.locals = {}
        for infos in chunk.infos:
            recorder.locals["infos"] = infos
            recorder._on_step()
    assert replay.size == 120
    assert_whole_consistent_episodes(replay, recorder)


def test_envs_that_cannot_be_shipped_are_refused_before_ray_starts(tmp_path):
    ray_was_initialized = ray.is_initialized()
    logged = DummyVecEnv([lambda: Monitor(make_vec_env("CartPole-v1").envs[0], str(tmp_path / "monitor"))])
    model = MuZero("MlpPolicy", logged, actors=2, **SMALL)
    with pytest.raises(ValueError, match=r"actors=2 needs envs Ray can ship to the actors, and the env .* cannot be pickled"):
        model.learn(100)
    how_to_ship = "pass actor_env=<a function actor_env(seed=...) -> VecEnv that Ray can pickle>"
    with pytest.raises(ValueError, match=re.escape(how_to_ship)):
        model.learn(100)
    model = MuZero("MlpPolicy", VecNormalize(cartpole(), norm_reward=False), actors=2, **SMALL)
    with pytest.raises(ValueError, match="actors do not support VecNormalize"):
        model.learn(100)
    assert ray.is_initialized() == ray_was_initialized


@pytest.mark.parametrize(
    "argument, value, message",
    [
        ("actors", -1, "actors must be an integer >= 0, got -1"),
        ("chunk_steps", 0, "chunk_steps must be an integer >= 1, got 0"),
        ("weight_sync_interval", 0.5, "weight_sync_interval must be an integer >= 1, got 0.5"),
        ("actor_env", "CartPole-v1", "actor_env must be a function actor_env\\(seed=...\\) -> VecEnv, got 'CartPole-v1'"),
        ("ray_actor_options", ["num_cpus"], "ray_actor_options must be a dict of Ray actor options, got \\['num_cpus'\\]"),
    ],
)
def test_bad_distributed_arguments_are_refused(argument, value, message):
    with pytest.raises(ValueError, match=message):
        MuZero("MlpPolicy", "CartPole-v1", **{**SMALL, argument: value})


def test_without_ray_learning_with_actors_says_what_to_install(monkeypatch):
    monkeypatch.setitem(sys.modules, "ray", None)  # import ray fails
    monkeypatch.delitem(sys.modules, "sb3_muzero.distributed.learner", raising=False)
    model = MuZero("MlpPolicy", "CartPole-v1", actors=2, **SMALL)
    with pytest.raises(ImportError, match=re.escape("actors=2 needs Ray: pip install 'sb3-muzero[distributed]'")):
        model.learn(100)


def test_importing_the_package_and_making_a_distributed_model_do_not_import_ray():
    code = (
        "import sys; from sb3_muzero import MuZero; "
        "MuZero('MlpPolicy', 'CartPole-v1', actors=2); "
        "print(sorted(name for name in sys.modules if name == 'ray' or name.startswith('ray.')))"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=120)
    assert result.stdout.strip() == "[]"


# --- on a local Ray instance ------------------------------------------------------------------------


@pytest.fixture(scope="module")
def local_ray():
    """The Ray instance the first distributed ``learn`` starts itself; shut down after this module's local tests."""
    yield
    ray.shutdown()


class KillActor(BaseCallback):
    """Kills an actor's process once the learner has taken in ``at`` env steps, and waits until Ray has restarted it
    (so that the restarted actor surely sends chunks before the end of a short run)."""

    def __init__(self, actor: int, at: int):
        super().__init__()
        self.actor, self.at = actor, at
        self.env_steps_at_kill = None

    def _on_step(self) -> bool:
        if self.env_steps_at_kill is None and self.num_timesteps >= self.at:
            actor, record = self.model._actor_pool.handles[self.actor], self.model._actor_pool.stats.actors[self.actor]
            self.env_steps_at_kill = record.env_steps
            ray.kill(actor, no_restart=False)  # most likely while it makes a chunk
            deadline = time.monotonic() + 120
            while time.monotonic() < deadline:
                try:
                    if ray.get(actor.describe.remote()).pid != record.pid:
                        break
                except ray.exceptions.RayActorError:  # still restarting
                    time.sleep(0.5)
        return True


@pytest.mark.slow
def test_two_actors_train_cartpole_on_a_ray_instance_started_by_learn(local_ray):
    assert not ray.is_initialized()
    recorder = EpisodeRecorder()
    model = MuZero("MlpPolicy", cartpole(), seed=0, **DISTRIBUTED).learn(480, callback=recorder)
    assert ray.is_initialized()
    stats = model.actor_stats
    assert model.num_timesteps == stats.env_steps == model.replay_buffer.size >= 480
    assert all(record.env_steps >= 16 for record in stats.actors)
    # The configured replay ratio: 0.25 gradient steps per env step once more than learning_starts (32) were taken in.
    assert model._n_updates == 0.25 * (model.num_timesteps - 32)
    assert stats.weight_syncs >= 10 and all(record.weights_version > 0 for record in stats.actors)
    assert 0 < stats.mean_weight_lag <= stats.weight_lag_max
    assert_whole_consistent_episodes(model.replay_buffer, recorder)
    logged = {"actors/0/env_steps_per_s", "actors/1/env_steps_per_s", "actors/weight_lag", "actors/ready_chunks"}
    assert logged <= recorder.logged


@pytest.mark.slow
def test_a_killed_actor_is_restarted_and_rejoins_while_the_learner_goes_on(local_ray):
    recorder, kill = EpisodeRecorder(), KillActor(actor=0, at=160)
    model = MuZero("MlpPolicy", cartpole(), seed=1, **DISTRIBUTED)
    model.learn(640, callback=[recorder, kill])
    stats = model.actor_stats.actors
    assert kill.env_steps_at_kill is not None
    assert stats[0].restarts == 1 and stats[1].restarts == 0
    assert stats[0].env_steps > kill.env_steps_at_kill  # it sent chunks again after its restart
    assert model.num_timesteps == model.actor_stats.env_steps == model.replay_buffer.size >= 640
    assert_whole_consistent_episodes(model.replay_buffer, recorder)


@pytest.mark.slow
def test_save_load_continues_a_distributed_run_in_one_process_and_the_reverse(local_ray, tmp_path):
    recorder = EpisodeRecorder()
    model = MuZero("MlpPolicy", cartpole(), seed=2, **DISTRIBUTED).learn(160, callback=recorder)
    model.save(tmp_path / "distributed")
    model.save_replay_buffer(tmp_path / "distributed")

    single = MuZero.load(tmp_path / "distributed", env=cartpole(seed=3), actors=0)
    single.load_replay_buffer(tmp_path / "distributed")
    before = single.num_timesteps
    single.learn(160, reset_num_timesteps=False, callback=recorder)
    assert single.num_timesteps == single.replay_buffer.size == before + 160
    assert single.actor_stats is None and single._n_updates > model._n_updates
    single.save(tmp_path / "single")
    single.save_replay_buffer(tmp_path / "single")

    again = MuZero.load(tmp_path / "single", env=cartpole(seed=4), actors=2)
    again.load_replay_buffer(tmp_path / "single")
    again.learn(160, reset_num_timesteps=False, callback=recorder)
    assert again.num_timesteps == again.replay_buffer.size >= single.num_timesteps + 160
    assert again.actor_stats.env_steps == again.num_timesteps - single.num_timesteps
    assert_whole_consistent_episodes(again.replay_buffer, recorder)


LEARNER = """
import sys
from stable_baselines3.common.env_util import make_vec_env
from sb3_muzero import CheckpointCallback, MuZero
from tests.helpers import SMALL

settings = dict(SMALL, actors=2, chunk_steps=8, weight_sync_interval=4, buffer_size=5000)
model = MuZero("MlpPolicy", make_vec_env("CartPole-v1", n_envs=2, seed=0), seed=0, ray_address=sys.argv[1], **settings)
model.learn(100_000, callback=CheckpointCallback(16, sys.argv[2], name_prefix="run"))
"""


@pytest.mark.slow
def test_a_killed_learner_resumes_from_its_last_checkpoint_with_new_actors(local_ray, tmp_path):
    address = ray.get_runtime_context().gcs_address
    script = tmp_path / "learner.py"
    script.write_text(textwrap.dedent(LEARNER))
    environment = {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPOSITORY), os.environ.get("PYTHONPATH", "")])}
    learner = subprocess.Popen([sys.executable, str(script), address, str(tmp_path)], env=environment)
    try:
        deadline = time.monotonic() + 150
        while latest_checkpoint(str(tmp_path), "run") is None or latest_checkpoint(str(tmp_path), "run").num_timesteps < 64:
            assert learner.poll() is None and time.monotonic() < deadline, "the learner stopped before a checkpoint"
            time.sleep(0.2)
    finally:
        learner.send_signal(signal.SIGKILL)
        learner.wait()
    checkpoint = latest_checkpoint(str(tmp_path), "run")
    model = MuZero.load(checkpoint.model_path, env=cartpole(seed=1))
    model.load_replay_buffer(checkpoint.replay_buffer_path)
    assert model.actors == 2 and model.num_timesteps == checkpoint.num_timesteps == model.replay_buffer.size
    model.learn(96, reset_num_timesteps=False)
    assert model.num_timesteps == model.replay_buffer.size >= checkpoint.num_timesteps + 96
    assert model.actor_stats.env_steps == model.num_timesteps - checkpoint.num_timesteps


@pytest.mark.slow
def test_rl_zoo3_trains_with_actors_given_as_params_joining_ray_by_its_address(local_ray, tmp_path):
    """rl-zoo3's training envs write Monitor files and cannot be shipped: the actors build rl-zoo3's envs themselves."""
    address = ray.get_runtime_context().gcs_address if ray.is_initialized() else ""
    command = [sys.executable, "-m", "rl_zoo3.train", "--algo", "muzero", "--env", "CartPole-v1", "-n", "64",
               "--eval-freq", "-1", "--seed", "0", "-params", "actors:2", "chunk_steps:2", "num_simulations:4",
               "learning_starts:16", "replay_ratio:0.25"]  # fmt: skip
    environment = {
        **os.environ,
        "RAY_ADDRESS": address,
        "PYTHONPATH": os.pathsep.join([str(REPOSITORY), os.environ.get("PYTHONPATH", "")]),
    }
    result = subprocess.run(command, cwd=tmp_path, env=environment, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    model = MuZero.load(tmp_path / "logs/muzero/CartPole-v1_1/CartPole-v1.zip")
    assert model.actors == 2 and model.num_timesteps >= 64
    assert model.actor_env is None  # a function: not written to the file (MuZero.load takes it again, as it takes env)


# --- on a cluster of three nodes --------------------------------------------------------------------


@pytest.mark.slow
def test_actors_run_on_the_worker_nodes_of_a_cluster(local_ray):
    from ray.cluster_utils import Cluster

    ray.shutdown()
    cluster = Cluster(initialize_head=True, head_node_args=dict(num_cpus=0))  # the head runs the learner only
    try:
        workers = [cluster.add_node(num_cpus=1) for _ in range(2)]
        cluster.wait_for_nodes()
        recorder = EpisodeRecorder()
        # One CPU for each actor's lifetime: one actor per worker node.
        one_cpu = dict(num_cpus=1)
        model = MuZero("MlpPolicy", cartpole(), seed=5, ray_address=cluster.address, ray_actor_options=one_cpu, **DISTRIBUTED)
        model.learn(160, callback=recorder)
        nodes = sorted(record.node_id for record in model.actor_stats.actors)
        assert nodes == sorted(worker.node_id for worker in workers)
        assert model.num_timesteps == model.replay_buffer.size >= 160
        assert_whole_consistent_episodes(model.replay_buffer, recorder)
    finally:
        ray.shutdown()
        cluster.shutdown()
