"""Sandbox sources: a seeded software organisation served over the real GitHub REST, Linear GraphQL
and Charlie protocols on loopback, with the ground truth of how its events correlate; and the same
organisation's agent sessions (OpenClaw), cron runs and weather-arbitrage opportunities.

Standalone on purpose: it imports nothing from the rest of the project, so it stands in for the
real world rather than mirroring the code under test.
"""

from sandbox.agents import generate_agents
from sandbox.generator import generate
from sandbox.process import SandboxHandle, run_sandbox

__all__ = ["SandboxHandle", "generate", "generate_agents", "run_sandbox"]
