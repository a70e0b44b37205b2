"""`nano-banana studio --host`: a bind others can reach is named, and warned about."""

import socket

import pytest

from nano_banana.cli.studio import _shown_host, exposure_warning, is_loopback, studio_url


@pytest.mark.parametrize("host", ["127.0.0.1", "127.0.1.1", "localhost", "::1"])
def test_loopback_binds_are_shown_as_localhost_without_warning(host):
    assert is_loopback(host) and _shown_host(host) == "localhost"


@pytest.mark.parametrize("host", ["0.0.0.0", "::"])
def test_an_all_interfaces_bind_shows_the_machine_not_localhost(host):
    assert not is_loopback(host)
    assert _shown_host(host) == socket.gethostname()


def test_the_warning_names_the_address_the_token_and_the_proxy():
    text = exposure_warning("192.168.1.5", 8501)
    assert "192.168.1.5:8501" in text and "access token" in text and "reverse proxy" in text


def test_the_printed_link_carries_the_token():
    assert studio_url("127.0.0.1", 8501, None) == "http://localhost:8501"
    assert studio_url("10.0.0.2", 9000, "abc") == "http://10.0.0.2:9000/?token=abc"
