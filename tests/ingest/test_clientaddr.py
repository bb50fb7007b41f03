from app.ingest.clientaddr import client_address, parse_networks


def test_untrusted_peer_ignores_header() -> None:
    assert client_address("198.51.100.7", ["1.2.3.4"], parse_networks(["10.0.0.0/8"])) == "198.51.100.7"


def test_trusted_chain_walks_from_the_right() -> None:
    trusted = parse_networks(["10.0.0.0/8", "127.0.0.1"])
    assert client_address("127.0.0.1", ["6.6.6.6, 203.0.113.5, 10.1.1.1"], trusted) == "203.0.113.5"
    assert client_address("127.0.0.1", ["garbage"], trusted) == "garbage"
    assert client_address("127.0.0.1", [], trusted) == "127.0.0.1"
    assert client_address(None, ["1.1.1.1"], trusted) is None
