"""An S3-compatible server on loopback (moto's), for productions whose uploads live in a bucket."""

from __future__ import annotations

import secrets
import socket
import subprocess
import sys
import time
from pathlib import Path

from .sshd import free_port


class S3Server:
    def __init__(self, log: Path):
        self.log = log
        self.port = free_port()
        self.key, self.secret = "dxd" + secrets.token_hex(6), secrets.token_hex(16)
        self.process: subprocess.Popen | None = None

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> "S3Server":
        server = Path(sys.executable).with_name("moto_server")
        with open(self.log, "ab") as log:
            self.process = subprocess.Popen([str(server), "-H", "127.0.0.1", "-p", str(self.port)],
                                            stdout=log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=1):
                    return self
            except OSError:
                time.sleep(0.2)
        raise RuntimeError(f"moto_server did not start; see {self.log}")

    def client(self):
        import boto3

        return boto3.client("s3", endpoint_url=self.endpoint, region_name="us-east-1",
                            aws_access_key_id=self.key, aws_secret_access_key=self.secret)

    def new_bucket(self) -> str:
        name = f"dxd-{secrets.token_hex(4)}"
        self.client().create_bucket(Bucket=name)
        return name

    def objects(self, bucket: str) -> dict[str, str]:
        """{key: ETag} of every object in the bucket."""
        found = {}
        for page in self.client().get_paginator("list_objects_v2").paginate(Bucket=bucket):
            for item in page.get("Contents", []):
                found[item["Key"]] = item["ETag"]
        return found

    def directus_env(self, bucket: str) -> dict[str, str]:
        """Directus's settings for uploads in `bucket` through its own S3 driver."""
        return {"STORAGE_LOCATIONS": "s3", "STORAGE_S3_DRIVER": "s3", "STORAGE_S3_KEY": self.key,
                "STORAGE_S3_SECRET": self.secret, "STORAGE_S3_BUCKET": bucket, "STORAGE_S3_REGION": "us-east-1",
                "STORAGE_S3_ENDPOINT": self.endpoint, "STORAGE_S3_FORCE_PATH_STYLE": "true"}

    def stop(self) -> None:
        if self.process:
            self.process.terminate()
            self.process.wait(timeout=10)
