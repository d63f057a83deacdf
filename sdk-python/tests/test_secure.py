"""Tokens and TLS: the client trusts a private CA and sends a bearer token; a missing
token is ``Unauthenticated``, a token without the role ``PermissionDenied``.

Runs against the secured node ``tests/tests/python_sdk.rs`` starts (``CREDENCE_SECURE_URL``
and the variables below); the plain suite's node has neither tokens nor TLS.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

import credence
from conftest import late_payment

SECURE = os.environ.get("CREDENCE_SECURE_URL")
pytestmark = pytest.mark.skipif(
    SECURE is None, reason="CREDENCE_SECURE_URL unset: tests/tests/python_sdk.rs sets it"
)


def _ca() -> bytes:
    return Path(os.environ["CREDENCE_CA_FILE"]).read_bytes()


def test_token_and_ca(subject: str) -> None:
    assert SECURE is not None
    producer_token = os.environ["CREDENCE_PRODUCER_TOKEN"]
    reader_token = os.environ["CREDENCE_READER_TOKEN"]
    with credence.Client(SECURE, token=producer_token, ca_certificate=_ca()) as producer:
        assert producer.publish_events([late_payment(f"{subject}-1", subject, 0)]).accepted == 1
        with pytest.raises(credence.PermissionDenied) as denied:
            producer.get_config()
        assert denied.value.code == "permission_denied"
    with credence.Client(SECURE, token=reader_token, ca_certificate=_ca()) as reader:
        assert reader.get_config().tiers
    with credence.Client(SECURE, ca_certificate=_ca()) as anonymous:
        with pytest.raises(credence.Unauthenticated):
            anonymous.get_config()
    with pytest.raises(credence.ConnectError):
        credence.Client(SECURE)  # the node's certificate is not trusted without the CA
