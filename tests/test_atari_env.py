"""The Atari VecEnv: SB3 VecEnv contract, episode bookkeeping, episodic life, seeding, ids and options."""

import warnings

import numpy as np
import pytest

import sb3_muzero

pytest.importorskip("ale_py")

from gymnasium import spaces
from stable_baselines3.common.atari_wrappers import AtariWrapper
from stable_baselines3.common.monitor import Monitor
from stable_baselines3.common.vec_env import VecEnv

from sb3_muzero.envs import AtariVecEnv, make_atari_vec_env

BREAKOUT_V4 = "BreakoutNoFrameskip-v4"
BREAKOUT_V5 = "ALE/Breakout-v5"
BREAKOUT_LIVES = 5


def random_actions(env: VecEnv, num_steps: int, seed: int = 0) -> np.ndarray:
    """int64 ``[num_steps, n_envs]``."""
    return np.random.default_rng(seed).integers(env.action_space.n, size=(num_steps, env.num_envs))


def rollout(env: VecEnv, actions: np.ndarray) -> dict:
    """Reset, then step through ``actions`` ``[T, n_envs]``; observations include the reset one."""
    observations = [env.reset()]
    rewards, dones, infos = [], [], []
    for step_actions in actions:
        obs, reward, done, info = env.step(step_actions)
        observations.append(obs)
        rewards.append(reward)
        dones.append(done)
        infos.append(info)
    return dict(obs=np.stack(observations), rewards=np.stack(rewards), dones=np.stack(dones), infos=infos)


@pytest.fixture
def breakout():
    env = make_atari_vec_env(BREAKOUT_V4, 3, seed=0)
    yield env
    env.close()


# --------------------------------------------------------------------------------- VecEnv contract


def test_spaces_shapes_and_dtypes(breakout):
    assert isinstance(breakout, VecEnv) and breakout.num_envs == 3
    assert breakout.observation_space == spaces.Box(0, 255, (4, 84, 84), np.uint8)
    assert breakout.action_space == spaces.Discrete(4)
    obs = breakout.reset()
    assert isinstance(obs, np.ndarray) and obs.shape == (3, 4, 84, 84) and obs.dtype == np.uint8
    assert all(breakout.observation_space.contains(single) for single in obs)
    # A new game's stack holds one frame, the newest last, the older slots zero (as VecFrameStack after reset).
    assert not obs[:, :3].any() and obs[:, 3].reshape(3, -1).max(axis=1).min() > 0
    obs, rewards, dones, infos = breakout.step(np.array([1, 2, 3]))
    assert obs.shape == (3, 4, 84, 84) and obs.dtype == np.uint8
    assert rewards.shape == (3,) and rewards.dtype == np.float32
    assert dones.shape == (3,) and dones.dtype == np.bool_
    assert isinstance(infos, list) and len(infos) == 3
    assert all(info == {"TimeLimit.truncated": False} for info in infos)
    assert [info["lives"] for info in breakout.reset_infos] == [BREAKOUT_LIVES] * 3


def test_observations_are_independent_arrays(breakout):
    first = breakout.reset()
    kept = first.copy()
    for actions in random_actions(breakout, 30):
        breakout.step(actions)
    np.testing.assert_array_equal(first, kept)


def test_frame_stack_shifts_and_terminal_observation_continues_the_episode():
    env = make_atari_vec_env(BREAKOUT_V4, 2, seed=3, terminal_on_life_loss=False, max_episode_steps=40)
    run = rollout(env, random_actions(env, 100))
    obs, dones, infos = run["obs"], run["dones"], run["infos"]
    assert dones.sum() >= 4  # at least two time limits per env
    for step in range(1, len(obs)):
        for index in range(2):
            if dones[step - 1, index]:
                terminal = infos[step - 1][index]["terminal_observation"]
                assert terminal.shape == (4, 84, 84) and terminal.dtype == np.uint8
                np.testing.assert_array_equal(terminal[:3], obs[step - 1, index, 1:])
                assert not obs[step, index, :3].any()  # a new game
                assert not np.array_equal(terminal[3], obs[step, index, 3])
            else:
                np.testing.assert_array_equal(obs[step, index, :3], obs[step - 1, index, 1:])
    env.close()


def test_time_limit_truncates_with_episode_info():
    env = make_atari_vec_env(BREAKOUT_V4, 2, seed=1, terminal_on_life_loss=False, max_episode_steps=25)
    run = rollout(env, np.zeros((60, 2), dtype=np.int64))
    expected_done_steps = [24, 49]
    for step, infos in enumerate(run["infos"]):
        at_limit = step in expected_done_steps
        assert run["dones"][step].tolist() == [at_limit] * 2
        for info in infos:
            assert info["TimeLimit.truncated"] is at_limit
            assert ("episode" in info) is at_limit
            assert ("terminal_observation" in info) is at_limit
            if at_limit:
                assert info["episode"]["l"] == 25 and info["episode"]["r"] == 0.0 and info["episode"]["t"] >= 0.0
                assert info["terminal_observation"].shape == (4, 84, 84)
    env.close()


def test_default_time_limit_is_the_registration_frame_limit():
    env = make_atari_vec_env(BREAKOUT_V4, 1)
    assert env.get_attr("max_episode_steps") == [108_000 // 4]
    env.close()
    env = make_atari_vec_env(BREAKOUT_V4, 1, frame_skip=3)
    assert env.get_attr("max_episode_steps") == [108_000 // 3]
    env.close()


# ------------------------------------------------------------------------------- episode statistics


def test_episode_score_is_the_unclipped_game_score():
    """Same seed and actions: the games are identical, only the reward signal differs."""
    kwargs = dict(seed=5, max_episode_steps=150)
    clipped_env = make_atari_vec_env("SpaceInvadersNoFrameskip-v4", 2, **kwargs)
    raw_env = make_atari_vec_env("SpaceInvadersNoFrameskip-v4", 2, clip_reward=False, terminal_on_life_loss=False, **kwargs)
    actions = random_actions(clipped_env, 320, seed=1)
    clipped, raw = rollout(clipped_env, actions), rollout(raw_env, actions)
    assert raw["rewards"].max() > 1, "the game should give rewards that clipping changes"
    np.testing.assert_array_equal(clipped["rewards"], np.sign(raw["rewards"]))
    game_starts = np.zeros(2, dtype=int)
    checked = 0
    for step, infos in enumerate(clipped["infos"]):
        for index, info in enumerate(infos):
            if "episode" not in info:
                continue
            game = slice(game_starts[index], step + 1)
            assert info["episode"]["r"] == raw["rewards"][game, index].sum()
            assert info["episode"]["r"] != clipped["rewards"][game, index].sum()
            assert info["episode"]["l"] == step + 1 - game_starts[index]
            assert raw["infos"][step][index]["episode"]["r"] == info["episode"]["r"]
            game_starts[index] = step + 1
            checked += 1
    assert checked >= 4
    clipped_env.close()
    raw_env.close()


def test_life_loss_ends_the_training_episode_but_not_the_game():
    """Episodic life against the same games played without it (same seed, same actions)."""
    episodic_env = make_atari_vec_env(BREAKOUT_V4, 2, seed=11)
    whole_game_env = make_atari_vec_env(BREAKOUT_V4, 2, seed=11, terminal_on_life_loss=False)
    actions = random_actions(episodic_env, 450, seed=2)
    episodic_env.reset()
    whole_game = rollout(whole_game_env, actions)
    dones_in_game = np.zeros(2, dtype=int)
    life_losses = games = 0
    blank_slots = np.zeros(2, dtype=int)
    for step, step_actions in enumerate(actions):
        obs, rewards, dones, infos = episodic_env.step(step_actions)
        lives = episodic_env.get_attr("lives")
        np.testing.assert_array_equal(rewards, whole_game["rewards"][step])
        game_obs = whole_game["obs"][step + 1]
        for index in range(2):
            whole_game_info = whole_game["infos"][step][index]
            assert ("episode" in infos[index]) is ("episode" in whole_game_info)
            if "episode" in infos[index]:  # game over: both reset; 5 dones in the game, the last with stats
                assert dones[index] and infos[index]["episode"]["r"] == whole_game_info["episode"]["r"]
                assert infos[index]["episode"]["l"] == whole_game_info["episode"]["l"]
                assert dones_in_game[index] + 1 == BREAKOUT_LIVES and lives[index] == BREAKOUT_LIVES
                dones_in_game[index] = blank_slots[index] = 0
                games += 1
            elif dones[index]:  # a lost life: done, the game goes on, the frame stack starts over
                np.testing.assert_array_equal(infos[index]["terminal_observation"], game_obs[index])
                assert lives[index] == BREAKOUT_LIVES - 1 - dones_in_game[index]
                assert not whole_game["dones"][step, index]
                dones_in_game[index] += 1
                blank_slots[index] = 3
                life_losses += 1
            np.testing.assert_array_equal(obs[index, blank_slots[index] :], game_obs[index, blank_slots[index] :])
            assert not obs[index, : blank_slots[index]].any()
            blank_slots[index] = max(blank_slots[index] - 1, 0)
    assert games >= 2 and life_losses >= 8
    episodic_env.close()
    whole_game_env.close()


@pytest.mark.parametrize("terminal_on_life_loss", [True, False])
def test_fire_after_a_lost_life_relaunches_the_ball(terminal_on_life_loss):
    """An agent that only ever sends NOOP: the env presses FIRE in its place after every lost life (saying so in the
    step's info), so games go on and end; without fire_on_life_loss the game waits for the ball after the first loss."""
    results = {}
    for fire in (True, False):
        env = make_atari_vec_env(BREAKOUT_V4, 2, seed=3, fire_on_life_loss=fire, terminal_on_life_loss=terminal_on_life_loss)
        env.reset()
        games = fired = 0
        lives_before = np.array(env.get_attr("lives"))
        life_losses = 0
        for _ in range(600):
            _, _, _, infos = env.step(np.zeros(2, dtype=np.int64))
            lives = np.array(env.get_attr("lives"))
            life_losses += int(((lives < lives_before) & (lives > 0)).sum())
            lives_before = lives
            games += sum("episode" in info for info in infos)
            fired += sum(info.get("executed_action") == 1 for info in infos)
        results[fire] = (games, fired, life_losses)
        env.close()
    games, fired, life_losses = results[True]
    assert games >= 4 and fired == life_losses >= 4 * (BREAKOUT_LIVES - 1)
    games, fired, life_losses = results[False]
    assert games == 0 and fired == 0 and life_losses == 2  # one lost life per env, then no ball


def test_fire_after_a_lost_life_only_where_fire_is_action_1():
    """SB3's FireResetEnv test: FIRE must be action 1 of at least 3; MsPacman has none, and the option turns it off."""
    assert make_atari_vec_env(BREAKOUT_V4, 1)._fires_after_life_loss
    assert not make_atari_vec_env(BREAKOUT_V4, 1, fire_on_life_loss=False)._fires_after_life_loss
    assert not make_atari_vec_env("MsPacmanNoFrameskip-v4", 1)._fires_after_life_loss


# ------------------------------------------------------------------------------------------ seeding


def test_same_seed_same_trajectories_different_seed_different():
    actions = random_actions(make_atari_vec_env(BREAKOUT_V5, 2), 120, seed=4)
    runs = {}
    for name, seed in (("a", 123), ("b", 123), ("c", 124)):
        env = make_atari_vec_env(BREAKOUT_V5, 2, seed=seed)  # sticky actions: the emulator's RNG matters
        runs[name] = rollout(env, actions)
        env.close()
    for key in ("obs", "rewards", "dones"):
        np.testing.assert_array_equal(runs["a"][key], runs["b"][key])
    assert not np.array_equal(runs["a"]["obs"], runs["c"]["obs"])
    assert not np.array_equal(runs["a"]["obs"][:, 0], runs["a"]["obs"][:, 1])  # env i is seeded with seed + i


def test_seed_method_seeds_the_next_reset_only():
    actions = random_actions(make_atari_vec_env(BREAKOUT_V5, 2), 60, seed=4)
    seeded_at_build = make_atari_vec_env(BREAKOUT_V5, 2, seed=7)
    expected = rollout(seeded_at_build, actions)
    env = make_atari_vec_env(BREAKOUT_V5, 2)
    assert env.seed(7) == [7, 8]
    first = rollout(env, actions)
    second = rollout(env, actions)  # no new seed: the random state goes on
    for key in ("obs", "rewards", "dones"):
        np.testing.assert_array_equal(first[key], expected[key])
    assert not np.array_equal(second["obs"], expected["obs"])
    env.close()
    seeded_at_build.close()


# ------------------------------------------------------------------------------- ids and options


@pytest.mark.parametrize(
    "env_id, game, sticky, num_actions",
    [
        (BREAKOUT_V4, "breakout", 0.0, 4),
        (BREAKOUT_V5, "breakout", 0.25, 4),
        ("PongNoFrameskip-v4", "pong", 0.0, 6),
        ("ALE/Pong-v5", "pong", 0.25, 6),
    ],
)
def test_both_id_styles(env_id, game, sticky, num_actions):
    env = make_atari_vec_env(env_id, 2, seed=0)
    assert env.get_attr("game") == [game] * 2
    assert env.get_attr("repeat_action_probability") == [sticky] * 2
    assert env.get_attr("spec")[0].id == env_id
    assert env.action_space == spaces.Discrete(num_actions)
    assert env.reset().shape == (2, 4, 84, 84)
    env.close()


def test_options_change_the_env():
    env = make_atari_vec_env(
        BREAKOUT_V4, 2, full_action_space=True, repeat_action_probability=0.1, screen_size=64, frame_stack=2, num_threads=1
    )
    assert env.action_space == spaces.Discrete(18)
    assert env.observation_space.shape == (2, 64, 64)
    assert env.reset().shape == (2, 2, 64, 64)
    assert env.get_attr("repeat_action_probability") == [0.1, 0.1] and env.num_threads == 1
    env.close()


def test_unclipped_rewards_when_clipping_is_off():
    env = make_atari_vec_env("SpaceInvadersNoFrameskip-v4", 1, seed=0, clip_reward=False)
    rewards = rollout(env, random_actions(env, 150))["rewards"]
    assert rewards.dtype == np.float32 and rewards.max() > 1
    env.close()


@pytest.mark.parametrize(
    "env_id, error, message",
    [
        ("Breakout-v4", ValueError, "frameskip"),
        ("CartPole-v1", ValueError, "not an Atari"),
        ("BreakoutNoFrameskip-v9", ValueError, "BreakoutNoFrameskip-v4"),
        ("ALE/Breakot-v5", ValueError, "ALE/Breakout-v5"),
        ("NoSuchGame", ValueError, "NoFrameskip-v4"),
        (42, TypeError, "env_id must be a string"),
    ],
)
def test_bad_ids_raise_clearly(env_id, error, message):
    with pytest.raises(error, match=message):
        make_atari_vec_env(env_id, 1)


@pytest.mark.parametrize(
    "kwargs, error, message",
    [
        (dict(frameskip=4), TypeError, "unknown option.*frameskip.*supported options: frame_skip"),
        (dict(frame_skip=0), ValueError, "frame_skip must be >= 1, got 0"),
        (dict(noop_max=-1), ValueError, "noop_max"),
        (dict(clip_reward="yes"), TypeError, "clip_reward must be a bool"),
        (dict(repeat_action_probability=1.5), ValueError, r"repeat_action_probability must be in \[0, 1\]"),
        (dict(max_episode_steps=0), ValueError, "max_episode_steps"),
        (dict(num_threads=0), ValueError, "num_threads"),
        (dict(n_envs=0), ValueError, "n_envs must be >= 1"),
        (dict(n_envs=2.0), TypeError, "n_envs must be an int"),
        (dict(seed="1"), TypeError, "seed must be an int"),
    ],
)
def test_bad_options_raise_clearly(kwargs, error, message):
    n_envs = kwargs.pop("n_envs", 1)
    with pytest.raises(error, match=message):
        make_atari_vec_env(BREAKOUT_V4, n_envs, **kwargs)


@pytest.mark.parametrize(
    "actions, error, message",
    [
        (np.array([0, 1]), ValueError, "expected 3 actions"),
        (np.array([0.0, 1.0, 2.0]), TypeError, "integers"),
        (np.array([0, 1, 4]), ValueError, r"in \[0, 3\]"),
        (np.array([-1, 1, 2]), ValueError, r"in \[0, 3\]"),
    ],
)
def test_bad_actions_raise_and_leave_the_env_usable(breakout, actions, error, message):
    breakout.reset()
    with pytest.raises(error, match=message):
        breakout.step(actions)
    obs, *_ = breakout.step(np.array([[0], [1], [2]], dtype=np.int32))  # [n, 1] and int32 are accepted
    assert obs.shape == (3, 4, 84, 84)


# ----------------------------------------------------------------------------------- VecEnv API


def test_attributes_methods_and_wrappers(breakout):
    assert breakout.get_attr("render_mode") == [None] * 3 and breakout.render_mode is None
    assert breakout.get_attr("spec", indices=1)[0].id == BREAKOUT_V4
    breakout.reset()
    assert breakout.get_attr("lives", indices=[0, 2]) == [BREAKOUT_LIVES] * 2
    assert breakout.get_attr("observation_space")[0] == breakout.observation_space
    assert breakout.has_attr("frame_skip") and not breakout.has_attr("ale")
    with pytest.raises(AttributeError, match=r"no per-env attribute 'ale'.*supported: lives"):
        breakout.get_attr("ale")
    with pytest.raises(IndexError):
        breakout.get_attr("lives", indices=[3])
    assert breakout.env_method("get_action_meanings", indices=[0]) == [["NOOP", "FIRE", "RIGHT", "LEFT"]]
    with pytest.raises(NotImplementedError, match="get_action_meanings"):
        breakout.env_method("clone_state")
    with pytest.raises(NotImplementedError, match="make_atari_vec_env"):
        breakout.set_attr("frame_skip", 2)
    assert breakout.env_is_wrapped(Monitor) == [True] * 3
    assert breakout.env_is_wrapped(AtariWrapper) == [False] * 3
    with pytest.raises(NotImplementedError, match="rendering"):
        breakout.render("rgb_array")


def test_step_before_reset_and_use_after_close_raise():
    env = make_atari_vec_env(BREAKOUT_V4, 1)
    with pytest.raises(RuntimeError, match=r"call reset\(\) .* before step\(\)"):
        env.step(np.zeros(1, dtype=np.int64))
    env.reset()
    env.close()
    env.close()  # closing twice is fine
    with pytest.raises(RuntimeError, match="closed"):
        env.step(np.zeros(1, dtype=np.int64))
    with pytest.raises(RuntimeError, match="closed"):
        env.reset()


def test_sb3_sees_channel_first_images_and_trains():
    from stable_baselines3 import PPO
    from stable_baselines3.common.preprocessing import is_image_space, is_image_space_channels_first

    env = make_atari_vec_env(BREAKOUT_V4, 2, seed=0)
    assert isinstance(env, AtariVecEnv)
    assert is_image_space(env.observation_space) and is_image_space_channels_first(env.observation_space)
    model = PPO("CnnPolicy", env, n_steps=16, batch_size=32, n_epochs=1, seed=0, device="cpu")
    assert model.get_env() is env  # no VecTransposeImage needed
    model.learn(32)
    assert model.num_timesteps == 32
    env.close()


def test_evaluate_policy_reports_game_scores():
    """``evaluate_policy`` takes the Monitor path: whole games with their unclipped scores, no warning."""
    import warnings

    from stable_baselines3.common.evaluation import evaluate_policy

    class RandomPolicy:
        def __init__(self):
            self.rng = np.random.default_rng(0)

        def predict(self, observation, state=None, episode_start=None, deterministic=False):
            return self.rng.integers(4, size=len(observation)), None

    env = make_atari_vec_env("BreakoutNoFrameskip-v4", 2, seed=0)
    reported = []

    def collect(locals_, _globals):
        if locals_["done"] and "episode" in locals_["info"]:
            reported.append((locals_["info"]["episode"]["r"], locals_["info"]["episode"]["l"]))

    with warnings.catch_warnings():
        warnings.simplefilter("error")
        rewards, lengths = evaluate_policy(
            RandomPolicy(), env, n_eval_episodes=2, return_episode_rewards=True, callback=collect
        )
    assert len(rewards) == 2 and sorted(zip(rewards, lengths)) == sorted(reported)
    assert min(lengths) > 100  # a whole game of 5 lives, not one life
    env.close()


def test_numpy_scalars_are_accepted_as_options():
    env = make_atari_vec_env(BREAKOUT_V4, np.int64(2), seed=np.int64(0), frame_skip=np.int64(3), clip_reward=np.bool_(False))
    assert env.get_attr("frame_skip") == [3, 3] and type(env.get_attr("frame_skip")[0]) is int
    assert env.reset().shape == (2, 4, 84, 84)
    env.close()


# ------------------------------------------------------------------------------------ ale-py import


def test_ale_py_is_imported_only_when_an_env_is_built():
    import os
    import pathlib
    import subprocess
    import sys

    repo_root = pathlib.Path(__file__).resolve().parents[1]
    code = "import sys, sb3_muzero.envs; assert 'ale_py' not in sys.modules, 'ale_py imported eagerly'"
    subprocess.run([sys.executable, "-c", code], check=True, cwd=repo_root, env={**os.environ, "PYTHONPATH": str(repo_root)})


def test_missing_or_old_ale_py_explains_how_to_install(monkeypatch):
    import ale_py

    monkeypatch.setattr(ale_py, "__version__", "0.11.2")
    with pytest.raises(ImportError, match=r"ale-py >= 0\.12, found 0\.11\.2.*sb3-muzero\[atari\]"):
        make_atari_vec_env(BREAKOUT_V4, 1)
    monkeypatch.setitem(__import__("sys").modules, "ale_py", None)
    with pytest.raises(ImportError, match=r"need ale-py: pip install \"sb3-muzero\[atari\]\""):
        make_atari_vec_env(BREAKOUT_V4, 1)


# ------------------------------------------------------------------------------ MuZero on Breakout


def test_muzero_cnn_policy_trains_on_breakout_then_saves_loads_and_predicts(tmp_path):
    from sb3_muzero import MuZero

    env = sb3_muzero.make_atari_vec_env(BREAKOUT_V4, n_envs=4, seed=0)
    small_network = dict(channels=8, num_blocks=1, head_channels=2, head_hidden=[16], support_size=5)
    model = MuZero("CnnPolicy", env, num_simulations=3, batch_size=16, learning_starts=64, replay_ratio=0.1,
                   num_unroll_steps=3, buffer_size=2_000, seed=0, policy_kwargs=small_network)  # fmt: skip
    model.learn(400)
    assert model.num_timesteps == 400
    assert model._n_updates > 0
    # Frames are stored once: the replay knows the env stacks 4 frames and keeps single 84x84 frames.
    assert model.replay_buffer.frame_stack == 4
    assert model.replay_buffer._stored_observation_spaces()[""][0] == (1, 84, 84)
    assert model.replay_buffer.bytes_per_step() < 1.1 * 84 * 84

    observations = env.reset()
    actions, _ = model.predict(observations, deterministic=True)
    assert actions.shape == (4,) and env.action_space.contains(int(actions[0]))
    model.save(tmp_path / "breakout.zip")
    loaded = MuZero.load(tmp_path / "breakout.zip", env=env)
    np.testing.assert_array_equal(loaded.predict(observations, deterministic=True)[0], actions)
    for name, parameter in model.policy.state_dict().items():
        np.testing.assert_array_equal(loaded.policy.state_dict()[name].numpy(), parameter.numpy(), err_msg=name)
    env.close()


# ------------------------------------------------------------------- interrupted steps, result order, saving


def test_a_step_async_without_step_wait_leaves_the_env_in_step_with_a_reference():
    """An interrupt between step_async and step_wait: the next step gets its own results, as in an env that stepped."""
    actions = random_actions(make_atari_vec_env(BREAKOUT_V4, 2), 70, seed=1)
    interrupted, reference = make_atari_vec_env(BREAKOUT_V4, 2, seed=5), make_atari_vec_env(BREAKOUT_V4, 2, seed=5)
    interrupted.reset(), reference.reset()
    for step_actions in actions[:10]:
        interrupted.step(step_actions), reference.step(step_actions)
    interrupted.step_async(actions[10])  # and step_wait never runs
    reference.step(actions[10])
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        interrupted.step(actions[11]), reference.step(actions[11])
    for step_actions in actions[12:]:  # 58 steps more
        for got, expected in zip(interrupted.step(step_actions), reference.step(step_actions)):
            if isinstance(expected, list):
                assert [info.keys() for info in got] == [info.keys() for info in expected]
            else:
                np.testing.assert_array_equal(got, expected)
    assert interrupted.get_attr("lives") == reference.get_attr("lives")
    assert [str(warning.message) for warning in caught if "never followed by step_wait" in str(warning.message)]
    interrupted.close(), reference.close()


class ResultsOutOfOrder:
    """ale-py's vector interface returning each batch of results in reverse env order (with their env_id)."""

    def __init__(self, ale):
        self.ale = ale

    def __getattr__(self, name):
        return getattr(self.ale, name)

    def reset(self, *args):
        observations, info = self.ale.reset(*args)
        return observations[::-1], {key: value[::-1] for key, value in info.items()}

    def recv(self):
        *arrays, info = self.ale.recv()
        return (*(array[::-1] for array in arrays), {key: value[::-1] for key, value in info.items()})


def test_results_are_put_in_env_order_by_ale_pys_env_id():
    actions = random_actions(make_atari_vec_env(BREAKOUT_V4, 3), 40, seed=2)
    shuffled, reference = make_atari_vec_env(BREAKOUT_V4, 3, seed=0), make_atari_vec_env(BREAKOUT_V4, 3, seed=0)
    shuffled._ale = ResultsOutOfOrder(shuffled._ale)
    got, expected = rollout(shuffled, actions), rollout(reference, actions)
    for key in ("obs", "rewards", "dones"):
        np.testing.assert_array_equal(got[key], expected[key])
    shuffled.close(), reference.close()


def test_a_model_saved_with_its_atari_envs_loads_them_back_with_their_settings(tmp_path):
    from sb3_muzero import MuZero

    env = make_atari_vec_env(BREAKOUT_V4, 2, seed=0, frame_skip=3, max_episode_steps=500)
    small_network = dict(channels=4, num_blocks=1, head_channels=2, head_hidden=[8], support_size=3)
    model = MuZero("CnnPolicy", env, num_simulations=2, batch_size=8, learning_starts=16, buffer_size=200, seed=0,
                   policy_kwargs=small_network).learn(24)  # fmt: skip
    model.save(tmp_path / "breakout.zip", include=["env"])
    model.save_replay_buffer(tmp_path / "replay.npz")
    with pytest.warns(UserWarning, match="cannot save or restore the emulators' states, so the games start anew"):
        loaded = MuZero.load(tmp_path / "breakout.zip")
    assert isinstance(loaded.env, AtariVecEnv) and loaded.env.options == env.options and loaded.env.num_envs == 2
    assert loaded._last_obs is None
    loaded.load_replay_buffer(tmp_path / "replay.npz")
    loaded.learn(8, reset_num_timesteps=False)
    assert loaded.num_timesteps == 32
    np.testing.assert_array_equal(loaded.replay_buffer.step_in_episode[24:26], [0, 0])  # new games, new episodes
    env.close(), loaded.env.close()
