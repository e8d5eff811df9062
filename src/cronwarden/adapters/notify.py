"""The :class:`~cronwarden.ports.Notifier` on apprise: one URL scheme per service
(``mailto://``, ``slack://``, ``tgram://``, ``json://`` for a webhook, ...)."""

from __future__ import annotations

import asyncio

import apprise

from cronwarden.errors import BackendUnavailable


class AppriseNotifier:
    async def send(self, url: str, title: str, body: str, *, failure: bool) -> None:
        def deliver() -> bool:
            channel = apprise.Apprise()
            if not channel.add(url):
                raise BackendUnavailable("notify: the channel's URL is not one apprise knows")
            kind = apprise.NotifyType.FAILURE if failure else apprise.NotifyType.SUCCESS
            return bool(channel.notify(body=body, title=title, notify_type=kind))

        if not await asyncio.to_thread(deliver):
            raise BackendUnavailable("notify: the channel did not accept the notification")
