"""Named SFTP connections: the ``sftp:`` of a connection file, used by the ``sftp`` step and
by the ``files`` poll source (``dir: sftp://<connection>/<folder>``).

Registered as the connection kind ``sftp`` (`CONNECTION`), whose ``drop`` opens a remote drop
folder for the ``files`` poll source (`connectors.sftp_drop`). paramiko is imported only when
a flow uses SFTP, not when the connection file is read.
"""

from __future__ import annotations

from typing import Any

from pydantic import Field, model_validator

from engine.plugin import ConnectionKind, Duration, Model, Port, Secret, one_of


class SftpConnection(Model):
    """The ``sftp:`` part of a connection file: an SFTP server."""

    host: str = Field(description="Host name of the SFTP server.")
    port: Port = Field(22, description="TCP port, or '${env:NAME}'.")
    username: str = Field(description="User name.")
    password: Secret | None = Field(None, description="Password: '${secret:NAME}'.")
    private_key: Secret | None = Field(None, description="Private key text (OpenSSH or PEM): "
                                                         "'${secret:NAME}'.")
    passphrase: Secret | None = Field(None, description="Passphrase of the private key.")
    host_key: str | None = Field(None, description="Pinned server key fingerprint, "
                                                   "'SHA256:...' as ssh-keygen -lf prints it.")
    known_hosts: str | None = Field(None, description="OpenSSH known_hosts file to check the "
                                                      "server key against.")
    timeout: Duration = Field(10.0, description="Connect and operation timeout.")

    @model_validator(mode="after")
    def _checks(self) -> SftpConnection:
        if self.host_key is None and self.known_hosts is None:
            raise ValueError("give host_key (the server's SHA256 fingerprint) or known_hosts; "
                             "an unknown server key is never accepted")
        one_of(self, ("password", "private_key"), "an sftp connection")
        return self


def drop(name: str, config: SftpConnection, folder: str, label: str) -> Any:
    from connectors.sftp_drop import opener  # paramiko only for flows that use SFTP

    return opener(name, config, folder, label)


CONNECTION = ConnectionKind(name="sftp", config=SftpConnection, drop=drop,
                            description="An SFTP server: host, port, user, password or private "
                                        "key, and the server key it must show.")
