"""What the actors and the learner did during one ``learn()`` with actors: counters and seconds, and their log lines.

The seconds are the per-step costs of the scaling model in ``docs/ARCHITECTURE.md``: an actor's busy time per env
step, the learner's time waiting for chunks, taking them in (replay writes and callbacks) and training.
"""

import time
from dataclasses import dataclass, field
from typing import Any, Optional

from stable_baselines3.common.logger import Logger


@dataclass
class ActorRecord:
    """One actor's counters."""

    node_id: Optional[str] = None  # the Ray node it runs on
    pid: int = 0  # its first process
    n_envs: int = 0
    env_steps: int = 0  # env steps of its chunks the learner took in
    chunks: int = 0
    busy_s: float = 0.0  # seconds it spent making those chunks
    lost_chunks: int = 0  # calls that failed because its process died (Ray restarts it)
    restarts: int = 0  # chunks that came from a new process (after a restart)
    weights_version: int = 0  # the version of the weights of its last chunk


@dataclass
class ActorStats:
    """Counters of the actors and the learner for one ``learn()`` call (``model.actor_stats`` afterwards)."""

    actors: list[ActorRecord]
    startup_s: float = 0.0  # starting Ray (if needed) and the actors, until every actor had built its envs
    wait_s: float = 0.0  # the learner waiting for a chunk
    intake_s: float = 0.0  # the learner writing chunks to the replay and running the callbacks on their steps
    weight_syncs: int = 0  # new weights put into Ray's object store
    weight_lag_sum: int = 0  # sum over chunks of (learner's gradient steps - the chunk's weights version)
    weight_lag_max: int = 0
    ready_chunks_sum: int = 0  # sum over chunks of the chunks waiting at the learner when it asked for one
    chunks: int = 0
    started: float = field(default_factory=time.perf_counter)

    def record_chunk(self, actor: int, env_steps: int, busy_s: float, weights_version: int, fresh_start: bool,
                     lag: int, ready_chunks: int) -> None:  # fmt: skip
        record = self.actors[actor]
        if fresh_start and record.chunks > 0:
            record.restarts += 1
        record.env_steps += env_steps
        record.chunks += 1
        record.busy_s += busy_s
        record.weights_version = weights_version
        self.chunks += 1
        self.weight_lag_sum += lag
        self.weight_lag_max = max(self.weight_lag_max, lag)
        self.ready_chunks_sum += ready_chunks

    @property
    def env_steps(self) -> int:
        return sum(record.env_steps for record in self.actors)

    @property
    def mean_weight_lag(self) -> float:
        return self.weight_lag_sum / max(1, self.chunks)

    def summary(self) -> dict[str, Any]:
        """Plain numbers, for benchmarks and logs."""
        elapsed = time.perf_counter() - self.started
        return dict(
            elapsed_s=elapsed,
            startup_s=self.startup_s,
            wait_s=self.wait_s,
            intake_s=self.intake_s,
            env_steps=self.env_steps,
            chunks=self.chunks,
            weight_syncs=self.weight_syncs,
            mean_weight_lag=self.mean_weight_lag,
            max_weight_lag=self.weight_lag_max,
            mean_ready_chunks=self.ready_chunks_sum / max(1, self.chunks),
            actor_env_steps=[record.env_steps for record in self.actors],
            actor_busy_s=[record.busy_s for record in self.actors],
            actor_restarts=[record.restarts for record in self.actors],
            actor_lost_chunks=[record.lost_chunks for record in self.actors],
        )

    def log(self, logger: Logger, lag: int, ready_chunks: int) -> None:
        """Record the actors' throughput, the weight lag and the queue of ready chunks in SB3's logger."""
        elapsed = max(time.perf_counter() - self.started - self.startup_s, 1e-9)
        for index, record in enumerate(self.actors):
            logger.record(f"actors/{index}/env_steps_per_s", record.env_steps / elapsed)
            logger.record(f"actors/{index}/restarts", record.restarts)
        logger.record_mean("actors/weight_lag", lag)
        logger.record("actors/weight_lag_max", self.weight_lag_max)
        logger.record_mean("actors/ready_chunks", ready_chunks)
        logger.record("actors/learner_wait_fraction", self.wait_s / elapsed)
        logger.record("actors/lost_chunks", sum(record.lost_chunks for record in self.actors))
