"""Known crawlers, from the maintained CrawlerDetect patterns: answered, never counted."""

from __future__ import annotations

from functools import lru_cache

from crawlerdetect import CrawlerDetect

_DETECTOR = CrawlerDetect()


@lru_cache(maxsize=8192)
def is_bot(user_agent: str) -> bool:
    # The pattern list is long (~0.5 ms a match); browsers send few distinct user agents.
    return bool(user_agent) and _DETECTOR.isCrawler(user_agent)


def warm_up() -> None:
    is_bot("Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)")
