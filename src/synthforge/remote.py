"""Remote storage: check a DVC remote, push to it, and pull exactly what can be there.

The default remote, ``storage`` in ``.dvc/config``, is a directory outside the repo
(``~/.local/share/synthforge/dvc-storage``): any clone on the same machine pushes to and
pulls from it without credentials. The README has recipes for S3, GCS, Azure and SSH.

    synthforge remote check [-r NAME] [--for pull]   # reachable, credentials, bucket
    synthforge push [-r NAME]                        # check, then dvc push
    synthforge pull [-r NAME]                        # check, then dvc pull of every pushable output

Outputs marked ``push: false`` in dvc.yaml (raw generated rows, quarantine files) never
reach a remote, so a plain ``dvc pull`` in a fresh clone reports them missing and exits 1.
``synthforge pull`` asks only for the outputs a push can have stored, fails if any of
those is missing, and names the ones that stay on the machine that made them.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlparse

RECIPES = "README, 'Remote storage'"
EXTRAS = {"s3": "s3", "gs": "gcs", "gcs": "gcs", "azure": "azure", "az": "azure", "ssh": "ssh"}


class RemoteError(Exception):
    """A remote that cannot be used, with what to do about it."""


@dataclass(frozen=True)
class Remote:
    name: str
    url: str
    options: dict

    @property
    def scheme(self) -> str:
        scheme = urlparse(self.url).scheme
        return "local" if len(scheme) <= 1 else scheme  # C:\ is a path, not a scheme

    def __str__(self) -> str:
        return f"remote '{self.name}' ({self.url})"


@dataclass(frozen=True)
class Outputs:
    pushable: list[str]
    local_only: list[str]
    unrecorded: list[str]  # pushable, but dvc.lock holds no hash for them


def open_repo(start: Path):
    """The DVC project that contains ``start``."""
    from dvc.exceptions import NotDvcRepoError
    from dvc.repo import Repo

    try:
        return Repo(Repo.find_root(str(start)))
    except NotDvcRepoError:
        raise RemoteError(f"{start} is not inside a DVC project (no .dvc/ folder above it)") from None


def resolve(repo, name: str | None) -> Remote:
    """The named remote, or the default one, with its options merged from every config level."""
    from dvc.fs import get_fs_config

    remotes = repo.config["remote"]
    name = name or repo.config["core"].get("remote")
    if not name:
        raise RemoteError(f"no default DVC remote: `dvc remote add -d NAME URL` ({RECIPES})")
    if name not in remotes:
        known = ", ".join(sorted(remotes)) or "none"
        raise RemoteError(f"no DVC remote named '{name}' (configured: {known})")
    options = dict(get_fs_config(repo.config, name=name))
    return Remote(name, options.pop("url"), options)


def outputs(repo) -> Outputs:
    """Cached outputs of dvc.yaml, split into those a push stores and those it never does."""
    outs = [o for o in repo.index.outs if o.use_cache]
    return Outputs(pushable=sorted(o.def_path for o in outs if o.can_push),
                   local_only=sorted(o.def_path for o in outs if not o.can_push),
                   unrecorded=sorted(o.def_path for o in outs if o.can_push and not o.hash_info))


def check(repo, remote: Remote, purpose: str = "push") -> str:
    """Raise RemoteError with a fix if ``remote`` cannot serve ``purpose``; else say what was checked."""
    if remote.scheme in ("local", "file"):
        return _check_local(remote, purpose)
    try:
        if remote.scheme == "s3":
            return _check_s3(remote)
        return _check_generic(repo, remote, purpose)
    except ImportError as exc:
        extra = EXTRAS.get(remote.scheme)
        hint = f"pip install -e '.[{extra}]'" if extra else "install DVC's plugin for it"
        raise RemoteError(f"{remote}: the {remote.scheme} backend is not installed ({exc}): {hint}") from None


def _check_local(remote: Remote, purpose: str) -> str:
    path = Path(urlparse(remote.url).path if remote.scheme == "file" else remote.url).expanduser()
    if path.is_dir():
        if purpose == "push" and not os.access(path, os.W_OK):
            raise RemoteError(f"{remote}: {path} is not writable")
        return f"{remote}: directory {path}"
    if purpose == "pull":
        raise RemoteError(f"{remote}: {path} does not exist, so nothing was pushed there yet. Run "
                          f"`synthforge push` where the data was built, or point the remote at the storage "
                          f"that has it ({RECIPES})")
    parent = next(p for p in path.parents if p.exists())
    if not os.access(parent, os.W_OK):
        raise RemoteError(f"{remote}: cannot create {path} ({parent} is not writable)")
    return f"{remote}: directory {path} (created by the first push)"


def _reachable(remote: Remote, endpoint: str, timeout: float = 5.0) -> None:
    url = urlparse(endpoint)
    port = url.port or (443 if url.scheme == "https" else 80)
    try:
        socket.create_connection((url.hostname, port), timeout=timeout).close()
    except OSError as exc:
        reason = exc.strerror or type(exc).__name__
        raise RemoteError(f"{remote}: cannot reach the S3 endpoint {endpoint} ({reason}). Is the server "
                          f"running, and is the address right? (`dvc remote modify {remote.name} endpointurl "
                          f"URL`)") from None


def _s3_session(remote: Remote):
    import boto3
    from botocore.exceptions import ProfileNotFound

    o = remote.options
    try:
        session = boto3.session.Session(profile_name=o.get("profile"), region_name=o.get("region"),
                                        aws_access_key_id=o.get("access_key_id"),
                                        aws_secret_access_key=o.get("secret_access_key"),
                                        aws_session_token=o.get("session_token"))
    except ProfileNotFound as exc:
        raise RemoteError(f"{remote}: {exc}") from None
    if o.get("credentialpath"):
        session._session.set_config_variable("credentials_file", o["credentialpath"])
    return session


def _no_credentials(remote: Remote) -> RemoteError:
    return RemoteError(
        f"{remote}: no AWS credentials found. Set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, or run "
        f"`dvc remote modify --local {remote.name} access_key_id ...` and `... secret_access_key ...` "
        f"(kept in .dvc/config.local, out of git), or `dvc remote modify {remote.name} profile NAME`")


def _check_s3(remote: Remote) -> str:
    from botocore.config import Config
    from botocore.exceptions import BotoCoreError, ClientError, EndpointConnectionError, NoCredentialsError

    endpoint = remote.options.get("endpointurl")
    if endpoint:
        _reachable(remote, endpoint)
    session = _s3_session(remote)
    anonymous = remote.options.get("allow_anonymous_login")
    creds = session.get_credentials()
    if creds is None and not anonymous:
        raise _no_credentials(remote)
    client = session.client("s3", endpoint_url=endpoint, verify=remote.options.get("ssl_verify", True),
                            config=Config(connect_timeout=5, read_timeout=15, retries={"total_max_attempts": 1}))
    bucket = urlparse(remote.url).netloc
    where = endpoint or "AWS"
    try:
        client.head_bucket(Bucket=bucket)
    except NoCredentialsError:
        raise _no_credentials(remote) from None
    except EndpointConnectionError:
        raise RemoteError(f"{remote}: cannot reach {where}. Check the network and the remote's "
                          f"`endpointurl`/`region`") from None
    except ClientError as exc:
        code = str(exc.response.get("Error", {}).get("Code"))
        if code in ("404", "NoSuchBucket"):
            raise RemoteError(f"{remote}: bucket '{bucket}' does not exist at {where}. Create it "
                              f"(`aws s3 mb s3://{bucket}`, or your provider's console) or fix the url "
                              f"(`dvc remote modify {remote.name} url s3://BUCKET/PATH`)") from None
        if code in ("403", "AccessDenied", "InvalidAccessKeyId", "SignatureDoesNotMatch"):
            raise RemoteError(f"{remote}: access to bucket '{bucket}' at {where} was denied ({code}): "
                              f"check the credentials and their permissions") from None
        raise RemoteError(f"{remote}: bucket '{bucket}' at {where}: {exc}") from None
    except BotoCoreError as exc:
        raise RemoteError(f"{remote}: {exc}") from None
    source = creds.method if creds else "anonymous"
    return f"{remote}: bucket '{bucket}' at {where}, credentials from {source}"


def _check_generic(repo, remote: Remote, purpose: str) -> str:
    from dvc.exceptions import DvcException

    try:
        cloud = repo.cloud.get_remote(remote.name)
        exists = cloud.fs.exists(cloud.path)
    except ImportError:
        raise
    except DvcException as exc:
        raise RemoteError(f"{remote}: {exc} ({RECIPES})") from None
    except Exception as exc:  # noqa: BLE001 - every backend raises its own types; show it, never a traceback
        raise RemoteError(f"{remote} is not usable: {type(exc).__name__}: {exc}") from None
    if not exists and purpose == "pull":
        raise RemoteError(f"{remote}: {cloud.path} does not exist, so nothing was pushed there yet")
    return f"{remote}: {'reachable' if exists else 'reachable, empty'}"


def _dvc(root: Path, *args: str) -> None:
    proc = subprocess.run([sys.executable, "-m", "dvc", *args], cwd=root, check=False)
    if proc.returncode:
        raise RemoteError(f"dvc {args[0]} exited {proc.returncode} (its message is above)")


@dataclass(frozen=True)
class Checked:
    """A project and one of its remotes, checked for a push or a pull."""

    root: Path
    remote: Remote
    line: str
    outs: Outputs


def prepare(start: Path, name: str | None, purpose: str) -> Checked:
    """Open the project containing ``start``, resolve the remote, check it for ``purpose``."""
    repo = open_repo(start)
    remote = resolve(repo, name)
    line = check(repo, remote, purpose)
    return Checked(Path(repo.root_dir), remote, line, outputs(repo))


def push(start: Path, name: str | None = None) -> Checked:
    """Check the remote, then ``dvc push`` to it."""
    c = prepare(start, name, "push")
    _dvc(c.root, "push", "-r", c.remote.name)
    return c


def pull(start: Path, name: str | None = None) -> Checked:
    """Check the remote, then pull every pushable output; fail if one of them is still missing."""
    c = prepare(start, name, "pull")
    if c.outs.unrecorded:
        raise RemoteError(f"dvc.lock records no version of {', '.join(c.outs.unrecorded)}: on the machine that "
                          f"built the data, commit dvc.lock after `dvc repro` and push, then pull here")
    if c.outs.pushable:
        _dvc(c.root, "pull", "-r", c.remote.name, *c.outs.pushable)
    missing = [path for path in c.outs.pushable if not (c.root / path).exists()]
    if missing:
        raise RemoteError(f"{c.remote}: still missing after the pull: {', '.join(missing)}")
    return c
