"""Stage V — agents living in the learned world, judged in the real one.

- :mod:`.tasks`         the world with a reward: flower picker and go home, exact from the simulator
- :mod:`.scripted`      the yardsticks: random, and scripted policies that read the true map
- :mod:`.heads`         reward and termination heads on the masked dynamics
- :mod:`.dream`         the dream behind gymnasium's API, many dreams at once
- :mod:`.actor_critic`  an actor-critic trained on imagined (or real) rollouts, lambda-returns
- :mod:`.planner`       random-shooting MPC through the dream, scored by the heads
- :mod:`.judge`         every policy judged in the real world on held-out worlds
- :mod:`.closed_loop`   the agent's own play refits the world model, then it dreams again
- :mod:`.agent_recipe`  the shipped agent (recipe "agent"); :mod:`.agent_figures` its figures
- :mod:`.home_agent`    go home learned with memory and without (DAgger; recipe "home",
  :mod:`.home_recipe`)
- :mod:`.home_dream`    the same go-home pair learned only in the memory dream, its teacher the
  dream's pose (recipe "home_dream", :mod:`.home_dream_recipe`)
- :mod:`.home_planner`  go home by looking ahead through the memory dream, with memory and without
- :mod:`.agent_play`    the capstone: the agent in the real world and the dream, side by side
- :mod:`.capstone_walls` the capstone's four dreams (memory by walls) at the walls the agent meets
- :mod:`.benchmark`     Stage V's benchmark rows
"""

from .scripted import FlowerScript, HomeScript, LookHome, RandomPolicy, RetraceHome
from .tasks import TASKS, FlowerPicker, GoHome, episode_rewards, make_task, pick_reward

__all__ = [
    "TASKS",
    "FlowerPicker",
    "FlowerScript",
    "GoHome",
    "HomeScript",
    "LookHome",
    "RetraceHome",
    "RandomPolicy",
    "episode_rewards",
    "make_task",
    "pick_reward",
]
