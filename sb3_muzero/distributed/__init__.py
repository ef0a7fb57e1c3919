"""Self-play actors on Ray feeding the learner's replay (``MuZero(..., actors=N)``); imported when ``learn`` starts actors.

- ``envs.py``: which envs can be shipped to an actor, and how each actor builds its own;
- ``actor.py``: :class:`SelfPlayActor`, one actor's envs and copy of the network (plain Python, run by Ray);
- ``chunk.py``: the chunk of steps an actor sends, and how the learner writes it to the replay;
- ``learner.py``: :class:`ActorPool`, the learner's side (Ray calls, weights, faults, SB3's bookkeeping);
- ``stats.py``: the counters and timings of a run with actors (``model.actor_stats``).

Only ``learner.py`` imports Ray.
"""
