"""The local S3 server (SeaweedFS) that the tests and `make demo` run on."""

import io


def test_the_local_s3_server_holds_data_in_many_buckets_whatever_the_free_disk(s3):
    # Sized from free disk space, SeaweedFS ran out of volumes after 17 buckets on an 18 GB-free disk.
    client = s3.client(retries=False)
    names = [f"many-buckets-{i:02d}" for i in range(40)]
    payload = b"x" * 4096
    for name in names:
        client.make_bucket(name)
        client.put_object(name, "object", io.BytesIO(payload), len(payload))
    try:
        for name in names:
            assert client.get_object(name, "object").read() == payload
    finally:
        for name in names:
            client.remove_object(name, "object")
            client.remove_bucket(name)


def test_free_ports_stay_out_of_the_ephemeral_range_and_are_never_handed_out_twice():
    from dfp.local_s3 import _ephemeral_ports_start, free_port

    ports = [free_port() for _ in range(200)]
    assert len(set(ports)) == 200 and max(ports) < _ephemeral_ports_start()
