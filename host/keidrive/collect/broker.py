"""The embedded broker: amqtt on a loopback port, in a thread of its own.

``keidrive collect`` without ``--broker`` starts it, so the whole loop (the
SIL firmware or a virtual board publishing, the collector subscribing) runs
on one machine with nothing to install but keidrive. Anonymous, loopback
only: for anything else use a broker of your own (mosquitto) with users,
ACLs and TLS.
"""

from __future__ import annotations

import asyncio
import logging
import socket
import threading

from ..errors import KeidriveError

START_TIMEOUT_S = 15.0


class EmbeddedBroker:
    """``tls``: (port, {"cert", "key"} PEM paths) for a TLS listener beside the plain one."""

    def __init__(self, host: str = "127.0.0.1", port: int = 1883, tls: tuple | None = None):
        self.host, self.port = host, port
        self.tls = tls
        self.loop = None
        self.broker = None
        self.thread = None
        self.error: BaseException | None = None
        self._ready = threading.Event()

    def start(self) -> EmbeddedBroker:
        try:
            from amqtt.broker import Broker
        except ImportError:
            raise KeidriveError("the embedded broker needs amqtt: pip install 'keidrive[collect]' "
                                "(or give --broker mqtt://HOST:PORT of a broker of your own)") from None
        _check_free(self.host, self.port)
        for name in ("amqtt", "transitions"):
            logging.getLogger(name).setLevel(logging.CRITICAL)  # its own chatter; failures come back here
        config = {
            "listeners": {"default": {"type": "tcp", "bind": f"{self.host}:{self.port}"}},
            "plugins": {"amqtt.plugins.authentication.AnonymousAuthPlugin": {"allow_anonymous": True}},
        }
        if self.tls is not None:
            port, files = self.tls
            _check_free(self.host, port)
            config["listeners"]["tls"] = {"type": "tcp", "bind": f"{self.host}:{port}", "ssl": True,
                                          "certfile": str(files["cert"]), "keyfile": str(files["key"])}

        def serve():
            self.loop = asyncio.new_event_loop()
            asyncio.set_event_loop(self.loop)
            try:
                async def begin():
                    self.broker = Broker(config)
                    await self.broker.start()

                self.loop.run_until_complete(begin())
            except BaseException as error:  # noqa: BLE001  reported by start() in the caller's thread
                self.error = error
                self._ready.set()
                return
            self._ready.set()
            self.loop.run_forever()

        self.thread = threading.Thread(target=serve, name="keidrive-broker", daemon=True)
        self.thread.start()
        if not self._ready.wait(START_TIMEOUT_S):
            raise KeidriveError(f"the embedded broker did not start within {START_TIMEOUT_S:.0f} s")
        if self.error is not None:
            raise KeidriveError(f"the embedded broker on {self.host}:{self.port} failed to start: {self.error}")
        return self

    @property
    def url(self) -> str:
        return f"mqtt://{self.host}:{self.port}"

    def stop(self) -> None:
        loop, broker = self.loop, self.broker
        if loop is None or broker is None or not loop.is_running():
            return
        future = asyncio.run_coroutine_threadsafe(broker.shutdown(), loop)
        try:
            future.result(timeout=10)
        except Exception:  # noqa: BLE001  stopping: nothing left to report to
            pass
        loop.call_soon_threadsafe(loop.stop)
        self.thread.join(timeout=10)


def _check_free(host: str, port: int) -> None:
    """One clear line for a port in use, before amqtt logs a traceback."""
    probe = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    try:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        probe.bind((host, port))
    except OSError as error:
        raise KeidriveError(f"cannot listen on {host}:{port} for the embedded broker ({error.strerror}): "
                            "another broker there? give it with --broker mqtt://HOST:PORT, or --listen another port"
                            ) from None
    finally:
        probe.close()
