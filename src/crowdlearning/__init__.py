"""CrowdLearning: the crowd corrects a self-driving policy and is paid when its data helps.

Importing the package registers the simulator with gymnasium (ids start with ``crowdlearning/``).
"""

from crowdlearning.sim.registration import register_envs

__version__ = "0.1.0"

register_envs()
