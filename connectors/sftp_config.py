"""The ``sftp:`` part of a connection file, as a model: what the SFTP client connects with and
what the ``sftp`` connection kind (`connectors.sftp_connection`) validates. No paramiko here:
the model is read whenever a connection file is, SFTP in use or not.
"""

from __future__ import annotations

from pydantic import Field, model_validator

from engine.plugin import Duration, Model, Port, Secret, one_of


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
