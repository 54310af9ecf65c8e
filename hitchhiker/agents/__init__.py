"""Stage V — agents living in the learned world, judged in the real one.

- :mod:`.tasks`     the world with a reward: flower picker and go home, exact from the simulator
- :mod:`.scripted`  the yardsticks: random, and scripted policies that read the true map
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
