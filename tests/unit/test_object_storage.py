"""engines.object_storage: buckets read from Directus's settings, and the rclone shell run for real
(rclone here, against moto's S3 server in this process): a backup copy built on the previous one
without changing it, checked by checksum, and a restore syncing the bucket's prefix back."""

from __future__ import annotations

import os
import re
import shutil

import pytest

from directus_deploy.core.errors import Refused
from directus_deploy.engines.object_storage import (
    HEALTH_PROBE_FILE,
    buckets_in,
    check_lines,
    copy_lines,
    restore_lines,
    secret_env,
)

from .local import run, strict

S3 = {"STORAGE_LOCATIONS": "local, s3", "STORAGE_S3_DRIVER": "s3", "STORAGE_S3_BUCKET": "media",
      "STORAGE_S3_ROOT": "/site/", "STORAGE_S3_KEY": "testing", "STORAGE_S3_SECRET": "testing-secret",
      "STORAGE_S3_FORCE_PATH_STYLE": "true"}


def test_buckets_are_the_locations_on_the_s3_driver():
    buckets = buckets_in({**S3, "STORAGE_S3_ENDPOINT": "http://minio:9000", "STORAGE_LOCAL_DRIVER": "local"})
    assert list(buckets) == ["s3"]
    bucket = buckets["s3"]
    assert (bucket.bucket, bucket.root, bucket.region, bucket.path_style) == ("media", "/site/", "us-east-1", True)
    assert bucket.path == "dxds3:media/site" and bucket.remote_name == "dxds3"
    assert "testing-secret" not in repr(bucket)
    assert secret_env(buckets) == {"RCLONE_CONFIG_DXDS3_ACCESS_KEY_ID": "testing",
                                   "RCLONE_CONFIG_DXDS3_SECRET_ACCESS_KEY": "testing-secret"}


def test_a_bucket_without_root_is_the_whole_bucket_and_names_are_reduced():
    env = {"STORAGE_LOCATIONS": "my-files", "STORAGE_MY_FILES_DRIVER": "s3", "STORAGE_MY_FILES_BUCKET": "b"}
    bucket = buckets_in(env)["my-files"]
    assert bucket.path == "dxdmyfiles:b" and bucket.remote_name == "dxdmyfiles"


@pytest.mark.parametrize("env", [
    {"STORAGE_LOCATIONS": "s3", "STORAGE_S3_DRIVER": "s3"},
    {"STORAGE_LOCATIONS": "Bad.Name", "STORAGE_BAD.NAME_DRIVER": "s3", "STORAGE_BAD.NAME_BUCKET": "b"},
])
def test_a_bucket_location_needs_a_plain_name_and_a_bucket(env):
    with pytest.raises(Refused, match="needs a plain name"):
        buckets_in(env)


def test_the_settings_shell_defines_rclones_remote_without_secrets():
    bucket = buckets_in({**S3, "STORAGE_S3_ENDPOINT": "http://minio:9000", "STORAGE_S3_REGION": "eu 1"})["s3"]
    shell = bucket.settings_shell()
    assert "testing-secret" not in shell
    out = run(shell + " env | grep ^RCLONE_CONFIG_DXDS3_ | sort").stdout.splitlines()
    assert out == ["RCLONE_CONFIG_DXDS3_ENDPOINT=http://minio:9000", "RCLONE_CONFIG_DXDS3_ENV_AUTH=false",
                   "RCLONE_CONFIG_DXDS3_FORCE_PATH_STYLE=true", "RCLONE_CONFIG_DXDS3_PROVIDER=Other",
                   "RCLONE_CONFIG_DXDS3_REGION=eu 1", "RCLONE_CONFIG_DXDS3_TYPE=s3"]


# -- rclone against a real S3 API ----------------------------------------------------------------

@pytest.fixture(scope="module")
def s3_url():
    if not shutil.which("rclone"):
        pytest.skip("rclone")
    moto_server = pytest.importorskip("moto.server")
    server = moto_server.ThreadedMotoServer(ip_address="127.0.0.1", port=0)
    server.start()
    host, port = server.get_host_and_port()
    yield f"http://{host}:{port}"
    server.stop()


@pytest.fixture
def bucket(s3_url, request):
    import boto3

    name = "media-" + re.sub(r"[^a-z0-9]", "", request.node.name.lower())[-40:]
    client = boto3.client("s3", endpoint_url=s3_url, aws_access_key_id="testing", aws_secret_access_key="x",
                          region_name="us-east-1")
    client.create_bucket(Bucket=name)
    for key, body in {"site/a.jpg": b"A1", "site/sub/b c.png": b"B1", f"site/{HEALTH_PROBE_FILE}": b"h",
                      "other/x.txt": b"X"}.items():
        client.put_object(Bucket=name, Key=key, Body=body)
    found = buckets_in({**S3, "STORAGE_S3_BUCKET": name, "STORAGE_S3_ENDPOINT": s3_url})["s3"]
    return found, client


def shell(lines, bucket_):
    # as on a host: no CA bundle of this machine's proxy settings in rclone's environment
    return run(strict(*lines), env={**bucket_.secret_env(), "AWS_CA_BUNDLE": None})


def files(folder):
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def differences(out: str) -> int:
    match = re.search(r"s3\D+?(\d+)", out)  # the location's name, then its count of differences
    assert match, out
    return int(match[1])


def rclone_version() -> tuple[int, int]:
    match = re.search(r"v(\d+)[.](\d+)", run("rclone version").stdout) if shutil.which("rclone") else None
    return (int(match[1]), int(match[2])) if match else (0, 0)


# rclone before 1.63 writes a changed file in place (no temporary file and rename): without the
# unlinking of changed objects first, the hard link made by `cp -al` would carry the change into
# the previous backup (Debian 12 ships rclone 1.60)
def test_a_backup_copies_the_prefix_and_the_next_one_builds_on_it_without_changing_it(bucket, tmp_path):
    found, client = bucket
    backups = tmp_path / "backups"
    first = backups / "20260101T000000Z-a" / "storage" / "s3"
    first.parent.mkdir(parents=True)
    shell(copy_lines(found, str(first), str(backups), "storage/s3"), found)
    assert files(first) == {"a.jpg": b"A1", "sub/b c.png": b"B1"}
    assert oct(first.stat().st_mode & 0o777) == "0o700"
    (backups / "20260101T000000Z-a" / "summary.json").write_text("{}")

    client.put_object(Bucket=found.bucket, Key="site/a.jpg", Body=b"A2-changed")
    second = backups / "20260102T000000Z-b" / "storage" / "s3"
    second.parent.mkdir(parents=True)
    shell(copy_lines(found, str(second), str(backups), "storage/s3"), found)
    assert files(second) == {"a.jpg": b"A2-changed", "sub/b c.png": b"B1"}
    assert os.stat(first / "sub/b c.png").st_ino == os.stat(second / "sub/b c.png").st_ino  # shared, not copied
    assert files(first) == {"a.jpg": b"A1", "sub/b c.png": b"B1"}  # the previous backup is untouched


def test_a_first_backup_is_a_private_copy_of_the_prefix_without_the_health_probe(bucket, tmp_path):
    found, _ = bucket
    backups = tmp_path / "backups"
    backups.mkdir()
    (backups / ".tmp-20260101T000000Z-x" / "storage" / "s3").mkdir(parents=True)  # leftovers are no base
    target = tmp_path / "copy"
    shell(copy_lines(found, str(target), str(backups), "storage/s3"), found)
    assert files(target) == {"a.jpg": b"A1", "sub/b c.png": b"B1"}
    assert oct(target.stat().st_mode & 0o777) == "0o700"
    assert oct((target / "a.jpg").stat().st_mode & 0o077) == "0o0"


def test_the_check_counts_objects_that_differ_from_the_copy(bucket, tmp_path):
    found, client = bucket
    copy = tmp_path / "copy"
    shell(copy_lines(found, str(copy), str(tmp_path / "no-backups"), "storage/s3"), found)
    assert differences(shell(check_lines(found, str(copy), exact=True), found).stdout) == 0
    client.put_object(Bucket=found.bucket, Key="site/new.jpg", Body=b"N")
    assert differences(shell(check_lines(found, str(copy), exact=True), found).stdout) == 1
    assert differences(shell(check_lines(found, str(copy), exact=False), found).stdout) == 0
    client.put_object(Bucket=found.bucket, Key="site/a.jpg", Body=b"changed")
    assert differences(shell(check_lines(found, str(copy), exact=False), found).stdout) == 1


def test_a_restore_puts_the_prefix_back_as_the_copy_holds_it_and_leaves_the_rest(bucket, tmp_path):
    found, client = bucket
    copy = tmp_path / "copy"
    shell(copy_lines(found, str(copy), str(tmp_path / "no-backups"), "storage/s3"), found)
    client.put_object(Bucket=found.bucket, Key="site/a.jpg", Body=b"changed")
    client.put_object(Bucket=found.bucket, Key="site/made-later.jpg", Body=b"L")
    shell(restore_lines(found, str(copy)), found)
    keys = {o["Key"] for o in client.list_objects_v2(Bucket=found.bucket)["Contents"]}
    assert keys == {"site/a.jpg", "site/sub/b c.png", f"site/{HEALTH_PROBE_FILE}", "other/x.txt"}
    assert client.get_object(Bucket=found.bucket, Key="site/a.jpg")["Body"].read() == b"A1"
