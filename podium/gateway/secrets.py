"""Provider secrets at rest: Fernet (AES-128-CBC + HMAC) with one key per installation.

The key comes from ``PODIUM_ENCRYPTION_KEY`` or is generated once into
``$PODIUM_HOME/secret.key`` (mode 600). Encrypted values are stored as ``enc:<token>``;
the API never returns them (it says ``"api_key": "set"``).
"""

from __future__ import annotations

import os
from pathlib import Path

from podium.errors import ConfigurationError

__all__ = ["SecretBox"]

PREFIX = "enc:"


class SecretBox:
    def __init__(self, key: str | bytes) -> None:
        from cryptography.fernet import Fernet

        try:
            self._fernet = Fernet(key)
        except (ValueError, TypeError):
            raise ConfigurationError(
                "PODIUM_ENCRYPTION_KEY is not a valid Fernet key (32 url-safe base64 bytes); generate one with "
                "python -c 'from cryptography.fernet import Fernet; print(Fernet.generate_key().decode())'"
            )

    @classmethod
    def from_settings(cls, key: str | None, home: Path) -> SecretBox:
        if key:
            return cls(key)
        path = home / "secret.key"
        if path.exists():
            return cls(path.read_bytes().strip())
        from cryptography.fernet import Fernet

        new = Fernet.generate_key()
        home.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "wb") as f:
            f.write(new)
        return cls(new)

    def encrypt(self, value: str) -> str:
        return PREFIX + self._fernet.encrypt(value.encode()).decode()

    def decrypt(self, value: str) -> str:
        from cryptography.fernet import InvalidToken

        if not value.startswith(PREFIX):
            return value
        try:
            return self._fernet.decrypt(value[len(PREFIX):].encode()).decode()
        except InvalidToken:
            raise ConfigurationError(
                "a stored provider secret cannot be decrypted with this encryption key; every process sharing "
                "the database needs the same PODIUM_ENCRYPTION_KEY (or $PODIUM_HOME/secret.key)"
            )
