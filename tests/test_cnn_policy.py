"""The residual image network (CnnPolicy) and image augmentation."""

import gymnasium as gym
import numpy as np
import pytest
import torch as th
from gymnasium import spaces
from stable_baselines3.common.env_util import make_vec_env

from sb3_muzero import MuZero
from sb3_muzero.muzero.augmentation import augment
from sb3_muzero.muzero.residual import AtariEncoder

TINY_CNN = dict(channels=8, num_blocks=1, head_channels=2, head_hidden=[8], support_size=3)


class ImageEnv(gym.Env):
    """Frame stacks of random 36x36 images; the reward is 1 when the action matches the first frame's parity."""

    observation_space = spaces.Box(0, 255, (4, 36, 36), np.uint8)
    action_space = spaces.Discrete(3)

    def reset(self, *, seed=None, options=None):
        super().reset(seed=seed)
        self.steps = 0
        return self._observation(), {}

    def step(self, action):
        reward = float(action == int(self.frame[0, 0, 0]) % 3)
        self.steps += 1
        return self._observation(), reward, False, self.steps >= 10, {}

    def _observation(self):
        self.frame = self.np_random.integers(0, 255, size=(4, 36, 36), dtype=np.uint8)
        return self.frame


def test_encoder_downsamples_84x84_to_6x6_and_36x36_to_3x3():
    assert AtariEncoder(spaces.Box(0, 255, (4, 84, 84), np.uint8), channels=16).latent_shape == (16, 6, 6)
    encoder = AtariEncoder(spaces.Box(0, 255, (4, 36, 36), np.uint8), channels=8)
    assert encoder(th.rand(2, 4, 36, 36)).shape == (2, 8, 3, 3)


@pytest.mark.parametrize("normalization", ["batch", "layer"])
def test_cnn_policy_inference_shapes_and_scaled_latents(normalization):
    model = MuZero("CnnPolicy", make_vec_env(ImageEnv, n_envs=2, seed=0), num_simulations=4, seed=0,
                   policy_kwargs=dict(normalization=normalization, **TINY_CNN))  # fmt: skip
    policy = model.policy
    policy.set_training_mode(False)
    observations = th.as_tensor(np.stack([model.observation_space.sample() for _ in range(5)]))
    latent, policy_logits, value_logits = policy.initial_inference(observations)
    assert latent.shape == (5, 8, 3, 3) and policy_logits.shape == (5, 3) and value_logits.shape == (5, 7)
    flat = latent.flatten(1)
    np.testing.assert_allclose(flat.min(1).values.detach(), 0.0, atol=1e-6)
    np.testing.assert_allclose(flat.max(1).values.detach(), 1.0, atol=1e-6)
    next_latent, reward_logits, _, _ = policy.recurrent_inference(latent, th.tensor([0, 1, 2, 0, 1]))
    assert next_latent.shape == latent.shape and reward_logits.shape == (5, 7)
    # The action plane matters: different actions give different next latents.
    other, _, _, _ = policy.recurrent_inference(latent, th.tensor([1, 2, 0, 1, 2]))
    assert not th.allclose(next_latent, other)


def test_cnn_policy_trains_with_consistency_loss_and_augmentation_then_saves_and_loads(tmp_path):
    model = MuZero("CnnPolicy", make_vec_env(ImageEnv, n_envs=2, seed=0), num_simulations=4, batch_size=8, learning_starts=16,
                   num_unroll_steps=2, consistency_loss_coef=2.0, augmentation=("shift", "intensity"), seed=0,
                   policy_kwargs=TINY_CNN)  # fmt: skip
    model.learn(40)
    assert model._n_updates > 0
    observation = model.observation_space.sample()
    action, _ = model.predict(observation, deterministic=True)
    model.save(tmp_path / "cnn")
    loaded = MuZero.load(tmp_path / "cnn")
    np.testing.assert_array_equal(loaded.predict(observation, deterministic=True)[0], action)


def test_augmentation_shifts_within_the_padding_and_treats_a_sample_alike():
    th.manual_seed(0)
    images = th.rand(3, 6, 2, 20, 20) * 255  # time-major: 3 images of each of 6 samples
    shifted = augment(images, ["shift"])
    assert shifted.shape == images.shape and not th.equal(shifted, images)
    for b in range(6):
        # Every image of a sample got the same shift: the same crop of the same padded image.
        padded = th.nn.functional.pad(images[:, b].reshape(1, 6, 20, 20), (4,) * 4, mode="replicate")[0]
        matches = [
            (dy, dx)
            for dy in range(9)
            for dx in range(9)
            if th.equal(padded[:, dy : dy + 20, dx : dx + 20], shifted[:, b].reshape(6, 20, 20))
        ]
        assert len(matches) == 1
    th.manual_seed(1)
    shifted_bytes = augment(images.round().to(th.uint8), ["shift"])
    th.manual_seed(1)
    assert shifted_bytes.dtype == th.uint8 and th.equal(shifted_bytes.float(), augment(images.round(), ["shift"]))
    scaled = augment(images, ["intensity"])
    ratios = (scaled / images).transpose(0, 1).flatten(1)
    np.testing.assert_allclose(ratios.min(1).values, ratios.max(1).values, rtol=1e-5)  # one factor per sample
    assert ((ratios[:, 0] >= 0.9 - 1e-6) & (ratios[:, 0] <= 1.1 + 1e-6)).all()
    th.manual_seed(2)
    scaled_bytes = augment(images.round().to(th.uint8), ["intensity"])
    th.manual_seed(2)
    assert scaled_bytes.dtype == th.float32 and th.equal(scaled_bytes, augment(images.round(), ["intensity"]))


def test_mixed_precision_computes_the_losses_in_bfloat16_close_to_float32_and_keeps_float32_parameters(tmp_path):
    model = MuZero("CnnPolicy", make_vec_env(ImageEnv, n_envs=2, seed=0), num_simulations=4, batch_size=16, learning_starts=16,
                   num_unroll_steps=2, consistency_loss_coef=2.0, augmentation=("shift", "intensity"), seed=0,
                   mixed_precision=True, policy_kwargs=TINY_CNN)  # fmt: skip
    convolutions = [module for module in model.policy.modules() if isinstance(module, th.nn.Conv2d)]
    assert convolutions and all(conv.weight.is_contiguous(memory_format=th.channels_last) for conv in convolutions)
    model.learn(40)
    assert model._n_updates > 0
    assert all(parameter.dtype == th.float32 for parameter in model.policy.parameters())
    assert all(state.dtype == th.float32 for group in model.policy.optimizer.state.values() for state in group.values()
               if isinstance(state, th.Tensor) and state.is_floating_point())  # fmt: skip
    sample = model.replay_buffer.sample(16, 2, model.td_steps, 1.0, np.random.default_rng(0), with_next_observations=True,
                                        with_bootstrap_observations=True)  # fmt: skip
    losses = {}
    for mixed in (True, False):
        model.mixed_precision = mixed
        th.manual_seed(3)  # the same augmentation
        with model._autocast():
            losses[mixed] = model._losses(sample)
    for name in ("value", "reward", "policy", "consistency", "total"):
        low, full = getattr(losses[True], name), getattr(losses[False], name)
        assert low.dtype == th.float32
        np.testing.assert_allclose(low.detach().numpy(), full.detach().numpy(), rtol=0.05, atol=0.02, err_msg=name)
    assert not th.equal(losses[True].total, losses[False].total)  # bfloat16 did run
    assert losses[True].value_targets_array.dtype == np.float32
    model.mixed_precision = True
    model.save(tmp_path / "mixed")
    loaded = MuZero.load(tmp_path / "mixed")
    loaded_convolutions = [module for module in loaded.policy.modules() if isinstance(module, th.nn.Conv2d)]
    assert loaded.mixed_precision and all(conv.weight.is_contiguous(memory_format=th.channels_last)
                                          for conv in loaded_convolutions)  # fmt: skip
    observation = model.observation_space.sample()
    np.testing.assert_array_equal(loaded.predict(observation, deterministic=True)[0],
                                  model.predict(observation, deterministic=True)[0])  # fmt: skip


def test_mixed_precision_is_refused_at_construction_where_the_device_has_no_bfloat16_autocast(monkeypatch):
    monkeypatch.setattr(th.amp, "is_autocast_available", lambda device_type: False)
    with pytest.raises(ValueError, match="mixed_precision=True needs bfloat16 autocast on the device, which cpu does not"):
        MuZero("CnnPolicy", make_vec_env(ImageEnv, n_envs=1), device="cpu", mixed_precision=True, policy_kwargs=TINY_CNN)
    MuZero("CnnPolicy", make_vec_env(ImageEnv, n_envs=1), device="cpu", mixed_precision=False, policy_kwargs=TINY_CNN)


def test_augmentation_needs_image_observations():
    with pytest.raises(ValueError, match="needs image observations"):
        MuZero("MlpPolicy", make_vec_env("CartPole-v1", n_envs=1), augmentation=("shift",))
    with pytest.raises(ValueError, match="Unknown augmentation"):
        MuZero("CnnPolicy", make_vec_env(ImageEnv, n_envs=1), augmentation=("rotate",), policy_kwargs=TINY_CNN)


# --- image layouts and small frames -----------------------------------------------------------------------------


@pytest.mark.parametrize("size, halvings, latent", [(84, 4, 6), (36, 4, 3), (20, 3, 3), (10, 2, 3), (6, 1, 3), (4, 0, 4)])
def test_small_frames_are_halved_fewer_times_and_keep_a_3x3_latent(size, halvings, latent):
    from sb3_muzero.muzero.residual import halvings_for

    assert halvings_for(size, size) == halvings
    encoder = AtariEncoder(spaces.Box(0, 255, (2, size, size), np.uint8), channels=8)
    assert encoder.latent_shape == (8, latent, latent) and encoder(th.rand(3, 2, size, size)).shape == (3, 8, latent, latent)


def test_the_84x84_encoder_keeps_its_parameters():
    """Adapting to small frames changes no parameter of the 84x84 network: its files still load."""
    small = AtariEncoder(spaces.Box(0, 255, (4, 10, 10), np.uint8), channels=8)
    large = AtariEncoder(spaces.Box(0, 255, (4, 84, 84), np.uint8), channels=8)
    assert {key: value.shape for key, value in small.state_dict().items()} == {
        key: value.shape for key, value in large.state_dict().items()
    }


@pytest.mark.parametrize("shape", [(84, 84, 4), (10, 10, 4)])
def test_channel_last_float_images_are_transposed_for_the_first_convolution(shape):
    height, width, channels = shape
    last = AtariEncoder(spaces.Box(0.0, 1.0, shape, np.float32), channels=8)
    first = AtariEncoder(spaces.Box(0.0, 1.0, (channels, height, width), np.float32), channels=8)
    assert last.net[0].in_channels == channels and last.latent_shape == first.latent_shape
    assert min(last.latent_shape[1:]) >= 3
    first.load_state_dict(last.state_dict())
    last.eval(), first.eval()
    images = th.rand(2, height, width, channels)
    th.testing.assert_close(last(images), first(images.permute(0, 3, 1, 2)))


class FloatChannelLastEnv(gym.Env):
    """Float frames [10, 10, 4], channel-last (SB3 transposes only uint8 images)."""

    observation_space = spaces.Box(0.0, 1.0, (10, 10, 4), np.float32)
    action_space = spaces.Discrete(2)

    def reset(self, *, seed=None, options=None):
        super().reset(seed=seed)
        return self.observation_space.sample(), {}

    def step(self, action):
        return self.observation_space.sample(), float(action), False, False, {}


def test_cnn_policy_learns_on_float_channel_last_frames():
    model = MuZero("CnnPolicy", FloatChannelLastEnv(), num_simulations=2, batch_size=8, learning_starts=8, seed=0,
                   policy_kwargs=TINY_CNN).learn(16)  # fmt: skip
    assert model.observation_space.shape == (10, 10, 4) and model._n_updates > 0
    assert model.policy.features_extractor.latent_shape == (8, 3, 3)
    with pytest.raises(ValueError, match=r"needs image observations \[C, H, W\] \(channel-first\)"):
        MuZero("CnnPolicy", FloatChannelLastEnv(), augmentation=("shift",), policy_kwargs=TINY_CNN)
