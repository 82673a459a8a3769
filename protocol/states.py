"""Project states, instance statuses, and the allowed project state changes, as data.

The manager is the one authority on a project's state; it changes a state only along
``TRANSITIONS``. Which states rest (a follower stops following) and which are final is
data too, so a new stage's state is one line in each table.
"""

from __future__ import annotations

from enum import StrEnum


class ProjectState(StrEnum):
    """Explicit project states; the manager is their one authority."""

    STARTING = "STARTING"
    BUILDING = "BUILDING"
    IMAGES_READY = "IMAGES_READY"
    TRAINING = "TRAINING"
    BUILDING_MODEL_IMAGE = "BUILDING_MODEL_IMAGE"  # stage model_image: the trained-model image
    DEPLOYING_MODEL = "DEPLOYING_MODEL"  # stage serve: until the inference service answers
    COMPLETED = "COMPLETED"
    FAILED = "FAILED"
    STOPPED = "STOPPED"

    @property
    def resting(self) -> bool:
        """Whether the project stays in this state without further automatic steps now."""
        return self in RESTING

    @property
    def final(self) -> bool:
        """Whether the project can never change state again."""
        return self in FINAL


FINAL = frozenset({ProjectState.COMPLETED, ProjectState.FAILED, ProjectState.STOPPED})
# Where a project rests: its images are built and its stack runs the build only
# ([stack] stages = "build"); with all stages, TRAINING follows BUILDING instead.
RESTING = FINAL | {ProjectState.IMAGES_READY}
_ENDS = frozenset({ProjectState.COMPLETED, ProjectState.FAILED, ProjectState.STOPPED})

# The post-training states follow whatever stage trained the model (or none did: tests).
_POST = frozenset({ProjectState.BUILDING_MODEL_IMAGE, ProjectState.DEPLOYING_MODEL})

# Allowed project state changes; anything else is refused.
TRANSITIONS: dict[ProjectState, frozenset[ProjectState]] = {
    ProjectState.STARTING: frozenset({ProjectState.BUILDING}) | _POST | _ENDS,
    ProjectState.BUILDING: frozenset({ProjectState.IMAGES_READY, ProjectState.TRAINING})
    | _POST
    | _ENDS,
    ProjectState.TRAINING: _POST | _ENDS,
    ProjectState.IMAGES_READY: _POST | _ENDS,
    ProjectState.BUILDING_MODEL_IMAGE: frozenset({ProjectState.DEPLOYING_MODEL}) | _ENDS,
    ProjectState.DEPLOYING_MODEL: _ENDS,
    ProjectState.COMPLETED: frozenset(),
    ProjectState.FAILED: frozenset(),
    ProjectState.STOPPED: frozenset(),
}


class InstanceStatus(StrEnum):
    """Status words of a service instance, as the oak-cli shows them."""

    REQUESTED = "REQUESTED"
    CLUSTER_SCHEDULED = "CLUSTER_SCHEDULED"
    NODE_SCHEDULED = "NODE_SCHEDULED"
    CREATING = "CREATING"
    CREATED = "CREATED"
    RUNNING = "RUNNING"
    FAILED = "FAILED"
    DEAD = "DEAD"
    COMPLETED = "COMPLETED"
    UNDEPLOYED = "UNDEPLOYED"


# Instance statuses of a service that should be running (restored after a restart).
RUNNABLE = (
    InstanceStatus.REQUESTED,
    InstanceStatus.CREATING,
    InstanceStatus.CREATED,
    InstanceStatus.RUNNING,
)
# Instance statuses that fail the service's project (Oakestra reports DEAD, too).
ENDED_BADLY = (InstanceStatus.FAILED, InstanceStatus.DEAD)
