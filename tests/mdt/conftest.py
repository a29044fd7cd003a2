"""Fixtures shared by the MDT tests."""

import pytest

from accounts.models import Role
from tests.factories import MembershipFactory, OrganisationFactory, UserFactory


@pytest.fixture
def trust():
    """An organisation hosting teams, with an administrator (``administrator``)."""
    return OrganisationFactory(name="Alliance Trust")


@pytest.fixture
def administrator(trust):
    user = UserFactory()
    MembershipFactory(user=user, organisation=trust, role=Role.ADMIN)
    return user
