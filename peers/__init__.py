"""The peers: other libraries' agents behind our entry point, so that their runs compare with ours.

Today one: sb3-contrib's RecurrentPPO (``algo=rppo``, peers/recurrent_ppo.py: its config and job),
on our envs through an SB3 ``VecEnv`` adapter (peers/sb3_vec_env.py), with the policy SB3 picks for
an observation space (peers/sb3_policy.py). Needs the sb3 extra. A peer imports our envs and
the run scaffolding of agents/runs.py, never our learner's training loop.
"""
