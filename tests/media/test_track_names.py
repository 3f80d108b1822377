"""Per-publisher file names of a `tracks` recording."""

from __future__ import annotations

from recorder.media.tracks import TrackNames, safe_name


def test_a_publisher_gets_its_id_and_concurrent_connections_a_number() -> None:
    names = TrackNames()
    assert names.claim("s1", "alice") == ("alice", True)
    assert names.claim("s2", "alice") == ("alice-2", True)
    assert names.claim("s3", "alice") == ("alice-3", True)
    assert names.claim("s4", "alice-screen") == ("alice-screen", True)
    assert names.claim("s1", "alice") == ("alice", False)  # the same connection again


def test_a_reconnect_continues_the_lowest_free_file_of_its_publisher() -> None:
    names = TrackNames()
    names.claim("s1", "alice")
    names.claim("s2", "alice")
    names.release("s1")
    assert names.claim("s3", "alice") == ("alice", False)
    names.release("s2")
    assert names.claim("s4", "alice") == ("alice-2", False)
    assert names.claim("s5", "alice") == ("alice-3", True)


def test_another_publisher_never_continues_someone_elses_file() -> None:
    names = TrackNames()
    names.claim("s1", "bob")
    names.claim("s2", "bob")  # bob-2
    names.release("s2")
    # a user whose id is literally "bob-2" gets a file of their own
    assert names.claim("s3", "bob-2") == ("bob-2-2", True)
    names.claim("s4", "a/b")
    assert names.claim("s5", "a_b") == ("a_b-2", True)


def test_names_are_safe_file_names() -> None:
    assert safe_name("user-1@example.com") == "user-1@example.com"
    assert safe_name("../../etc/passwd") == "_.._etc_passwd"
    assert safe_name(".uploaded") == "uploaded"
    assert safe_name("") == "publisher"
    assert safe_name("a b\nc") == "a_b_c"
    assert len(safe_name("x" * 500)) == 100
