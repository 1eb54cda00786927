"""Stateful multi-turn evaluation (tau-bench / tau2-bench style) on raypipe.

- `env`: the environment protocol (a JSON-like database, whitelisted tools, a policy) and the
  benchmark's rules for serialising tool answers and hashing the database;
- `retail_model`, `retail_tools`, `calculator`: tau2-bench's retail domain, behaving as the
  benchmark's own code does;
- `tasks`, `replay`: the domain directory (db.json, tasks.json, split_tasks.json, policy.md,
  tools.json) and the gold-action replay whose final database hash is the DB reward's target;
- `episode`, `agents`, `user_sim`, `reward`, `runner`: the episode loop (agent under test,
  simulated user, judge), rewards, seeded trials, pass^k, resumable trajectories.

Importing this package is cheap: nothing heavy loads until an episode runs.
"""
