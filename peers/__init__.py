"""The peers: other libraries' agents behind our entry point, so that their runs compare with ours.

Today one: sb3-contrib's RecurrentPPO (``algo=rppo``, peers/recurrent_ppo.py), on our envs through
an SB3 ``VecEnv`` adapter (peers/sb3_vec_env.py). Needs the sb3 extra. A peer imports our envs and
the run scaffolding of agents/runs.py, never our learner's training loop.
"""
