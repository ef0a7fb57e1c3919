"""The learner's side of the self-play actors: start them on Ray, send them weights, take their chunks in.

``MuZero.learn`` with ``actors=N`` opens an :class:`ActorPool` for the length of the call; SB3's loop then calls
``collect_rollouts``, which takes one chunk (:meth:`ActorPool.collect_rollout`), and ``train``, which makes
``replay_ratio`` gradient steps per env step of it, as without actors.

Flow control: every actor has exactly one ``collect`` call in flight. When its chunk arrives, the learner sends
the next call at once (so the actor plays while the learner trains), then writes the chunk to the replay, runs the
callbacks on its steps and trains on it. An actor therefore runs at most one chunk ahead of the training, and the
replay ratio holds per env step as in one process; actors wait when the learner is the slower side, the learner
waits when the actors are. Every ``weight_sync_interval`` gradient steps the learner puts its weights into Ray's
object store (once for all actors); every call names the newest, and an actor loads them when they are newer than
its own.

Faults: a chunk is the return value of one call, so it arrives whole or not at all. An actor whose process dies
loses its chunk in flight; Ray restarts it (``max_restarts=-1``), its constructor builds new envs, its first chunk
says so (``fresh_start``) and the learner starts new episodes in its replay streams before writing it; it loads
the newest weights with its first call. The learner goes on with the other actors meanwhile. ``num_timesteps``
counts the env steps written to the replay, so the counters never include lost steps. An actor that fails to
start (its env factory raises) stops training with its error; one whose calls fail ``MAX_CONSECUTIVE_FAILURES``
times in a row is left out, and training stops with an error when no actor is left.

Reanalyse workers (not built yet) would hang off the same pool: Ray actors holding a copy of the network
(refreshed like the self-play actors'), given sampled batches of replay slots and their observations, returning
fresh policy and value targets for ``train`` to use in place of the stored ones; the pool would keep one batch in
flight per worker, as it keeps one chunk per actor.
"""

import time
from typing import Any, Optional

import numpy as np
import ray
from ray.exceptions import RayActorError
from stable_baselines3.common.callbacks import BaseCallback
from stable_baselines3.common.type_aliases import RolloutReturn

from sb3_muzero.distributed.actor import ActorDescription, ActorSpec, SelfPlayActor, policy_weights
from sb3_muzero.distributed.chunk import Chunk, add_chunk
from sb3_muzero.distributed.envs import VEC_NORMALIZE_REFUSED, actor_env_factory
from sb3_muzero.distributed.stats import ActorRecord, ActorStats

# Each actor is restarted by Ray whenever its process dies; SPREAD places the actors on as many nodes as it can.
DEFAULT_ACTOR_OPTIONS: dict[str, Any] = dict(max_restarts=-1, max_task_retries=0, scheduling_strategy="SPREAD")
MAX_CONSECUTIVE_FAILURES = 20
ACTOR_START_TIMEOUT_S = 300  # for every actor to build its envs and network
RETRY_DELAY_S = 0.5  # before sending a call again to an actor that Ray is restarting


class ActorPool:
    """``model.actors`` Ray actors stepping their own envs for ``model``'s learner (see the module docstring)."""

    def __init__(self, model: Any):
        """:param model: the ``MuZero`` model whose ``learn`` runs (not imported here: it imports this module)"""
        start = time.perf_counter()
        self.model = model
        make_env = actor_env_factory(model.env, model.actor_env, model.actors)
        if not ray.is_initialized():
            ray.init(address=model.ray_address)
        spec = ActorSpec(make_env, model.policy_factory(), model.on_nonfinite)
        self._weights_version = model._n_updates
        self._weights = ray.put(policy_weights(model.policy))
        options = {**DEFAULT_ACTOR_OPTIONS, **(model.ray_actor_options or {})}
        remote_actor = ray.remote(SelfPlayActor).options(**options)
        seeds = _actor_seeds(model.seed, model.num_timesteps, model.actors)
        self.handles = [remote_actor.remote(spec, i, seeds[i]) for i in range(model.actors)]
        descriptions = self._describe()
        offsets = np.cumsum([0] + [description.n_envs for description in descriptions])
        self.streams = [np.arange(offsets[i], offsets[i + 1]) for i in range(model.actors)]
        self.stats = ActorStats(
            [ActorRecord(d.node_id, d.pid, d.n_envs, weights_version=self._weights_version) for d in descriptions]
        )
        self.stats.started, self.stats.startup_s = start, time.perf_counter() - start
        self._pending: dict[int, ray.ObjectRef] = {}
        self._failures = [0] * model.actors
        self._next_actor = 0  # where the next wait starts looking, so that no actor's chunks wait longer than others'

    @property
    def num_streams(self) -> int:
        """The replay's episode streams: one per env of every actor."""
        return sum(len(streams) for streams in self.streams)

    def __enter__(self) -> "ActorPool":
        return self

    def __exit__(self, *exc_info: Any) -> None:
        self.close()

    def close(self) -> None:
        """Stop the actors (their chunks in flight are dropped, never written)."""
        for handle in self.handles:
            ray.kill(handle, no_restart=True)
        self._pending.clear()

    # --- the learner's loop -----------------------------------------------------------------------

    def collect_rollout(self, callback: BaseCallback, log_interval: Optional[int]) -> RolloutReturn:
        """SB3's ``collect_rollouts`` with actors: take the next chunk whole into the replay, then count its steps and
        run the callbacks on them as if the learner had stepped the envs itself."""
        model = self.model
        callback.on_rollout_start()
        chunk, ready_chunks = self._next_chunk()
        start = time.perf_counter()
        lag = model._n_updates - chunk.weights_version
        self.stats.record_chunk(chunk.actor, chunk.env_steps, chunk.busy_s, chunk.weights_version, chunk.fresh_start,
                                lag, ready_chunks)  # fmt: skip
        add_chunk(model.replay_buffer, chunk, self.streams[chunk.actor], model._n_updates)
        rollout = self._count_steps(chunk, callback, log_interval)
        self.stats.log(model.logger, lag, ready_chunks)
        self.stats.intake_s += time.perf_counter() - start
        if rollout.continue_training:
            callback.on_rollout_end()
        return rollout

    def _count_steps(self, chunk: Chunk, callback: BaseCallback, log_interval: Optional[int]) -> RolloutReturn:
        """SB3's bookkeeping of ``collect_rollouts`` for every vector step of a chunk already in the replay."""
        model = self.model
        episodes = 0
        for t in range(chunk.num_steps):
            dones, infos, rewards = chunk.dones(t), chunk.infos[t], chunk.steps.rewards[t]
            model.num_timesteps += chunk.n_envs
            callback.update_locals(dict(infos=infos, dones=dones, rewards=rewards, actor=chunk.actor))
            if not callback.on_step():
                # The chunk is in the replay already: count its remaining steps too, so the counters match the replay.
                model.num_timesteps += (chunk.num_steps - 1 - t) * chunk.n_envs
                return RolloutReturn(chunk.env_steps, episodes, continue_training=False)
            model._update_info_buffer(infos, dones)
            model._update_current_progress_remaining(model.num_timesteps, model._total_timesteps)
            model._on_step()
            for _ in range(int(dones.sum())):
                episodes += 1
                model._episode_num += 1
                if log_interval is not None and model._episode_num % log_interval == 0:
                    model.dump_logs()
        return RolloutReturn(chunk.env_steps, episodes, continue_training=True)

    # --- Ray --------------------------------------------------------------------------------------

    def _describe(self) -> list[ActorDescription]:
        """Wait for every actor to start; refuse envs the model cannot use."""
        try:
            descriptions = ray.get([handle.describe.remote() for handle in self.handles], timeout=ACTOR_START_TIMEOUT_S)
        except RayActorError as error:
            self.close()
            raise RuntimeError(f"An actor could not start: {error}") from error
        except ray.exceptions.GetTimeoutError as error:
            self.close()
            raise RuntimeError(
                f"The {len(self.handles)} actors did not all start within {ACTOR_START_TIMEOUT_S} s: the cluster may lack "
                f"the resources they ask for (ray_actor_options={self.model.ray_actor_options!r}; available: "
                f"{ray.available_resources()})"
            ) from error
        model = self.model
        for index, description in enumerate(descriptions):
            problem = None
            spaces = (description.observation_space, description.action_space)
            if description.vec_normalize:
                problem = VEC_NORMALIZE_REFUSED
            elif spaces != (model.observation_space, model.action_space):
                problem = (
                    f"actor {index}'s envs have observation space {spaces[0]} and action space {spaces[1]}; the model's "
                    f"are {model.observation_space}, {model.action_space}"
                )
            if problem is not None:
                self.close()
                raise ValueError(problem)
        return descriptions

    def _next_chunk(self) -> tuple[Chunk, int]:
        """The next chunk any actor finished (waiting for one if none has), and how many were ready; the actor that
        made it is sent its next call at once."""
        for index in range(len(self.handles)):
            if index not in self._pending and self._failures[index] < MAX_CONSECUTIVE_FAILURES:
                self._dispatch(index)
        while True:
            if not self._pending:
                raise RuntimeError(f"Every actor failed {MAX_CONSECUTIVE_FAILURES} times in a row; see the errors above")
            order = sorted(self._pending, key=lambda index: (index - self._next_actor) % len(self.handles))
            refs = [self._pending[index] for index in order]
            start = time.perf_counter()
            ready, _ = ray.wait(refs, num_returns=len(refs), timeout=0)
            if not ready:
                ready, _ = ray.wait(refs, num_returns=1)
            self.stats.wait_s += time.perf_counter() - start
            index = order[refs.index(ready[0])]
            del self._pending[index]
            try:
                chunk = ray.get(ready[0])
            except RayActorError as error:
                self._lost(index, error)
                continue
            self._failures[index] = 0
            self._next_actor = (index + 1) % len(self.handles)
            self._dispatch(index)
            return chunk, len(ready)

    def _dispatch(self, index: int) -> None:
        """Send actor ``index`` its next ``collect`` call, naming the newest weights (new ones every
        ``weight_sync_interval`` gradient steps)."""
        model = self.model
        if model._n_updates - self._weights_version >= model.weight_sync_interval:
            self._weights_version, self._weights = model._n_updates, ray.put(policy_weights(model.policy))
            self.stats.weight_syncs += 1
        self._pending[index] = self.handles[index].collect.remote(
            model.chunk_steps, model.temperature, model.num_timesteps, self._weights_version, self._weights
        )

    def _lost(self, index: int, error: RayActorError) -> None:
        """Actor ``index``'s call failed: its chunk is lost. Ask again unless it keeps failing."""
        if error.actor_init_failed:
            raise RuntimeError(f"Actor {index} could not start again after its process died: {error}") from error
        self.stats.actors[index].lost_chunks += 1
        self._failures[index] += 1
        if self._failures[index] >= MAX_CONSECUTIVE_FAILURES:
            return
        time.sleep(RETRY_DELAY_S)
        self._dispatch(index)


def _actor_seeds(seed: Optional[int], num_timesteps: int, actors: int) -> list[Optional[int]]:
    """One seed per actor, different for every ``learn()`` of a run (None: random seeds)."""
    if seed is None:
        return [None] * actors
    states = np.random.SeedSequence([seed, num_timesteps]).spawn(actors)
    return [int(state.generate_state(1)[0]) for state in states]
