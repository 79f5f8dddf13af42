"""Named SFTP connections: the ``sftp:`` of a connection file, used by the ``sftp`` step and
by the ``files`` poll source (``dir: sftp://<connection>/<folder>``).

Registered as the connection kind ``sftp`` (`CONNECTION`): the model of `connectors.sftp_config`,
and a ``drop`` that opens a remote drop folder for the ``files`` poll source
(`connectors.sftp_drop`). This module sits above the client and the drop, so paramiko is
imported only when a flow uses SFTP, not when the connection file is read.
"""

from __future__ import annotations

from typing import Any

from connectors.sftp_config import SftpConnection
from engine.plugin import ConnectionKind


def drop(name: str, config: SftpConnection, folder: str, label: str) -> Any:
    from connectors.sftp_drop import opener  # paramiko only for flows that use SFTP

    return opener(name, config, folder, label)


CONNECTION = ConnectionKind(name="sftp", config=SftpConnection, drop=drop,
                            description="An SFTP server: host, port, user, password or private "
                                        "key, and the server key it must show.")
