"""One request through the edge, phase by phase, in Cloudflare's order (machine.py), free of
any proxy library: the request phases (request.py), the content phase (content.py), the
re-coding (recode.py), the response-headers phase (headers.py), what the visitor gets
(visitor.py) and the last phase's invariant (egress.py), the edge's own answers
(answers.py, errors.py) and the log record (record.py). run.py drives it without a proxy.
"""

from addon.exchange.answers import Answer
from addon.exchange.machine import Exchange
from addon.exchange.record import Record
from addon.exchange.run import Outcome
from addon.exchange.run import run
from addon.exchange.steps import AskOrigin
from addon.exchange.steps import Base
from addon.exchange.steps import Delivered
from addon.exchange.steps import EdgeContext
from addon.exchange.steps import FromCache
from addon.exchange.steps import NeedRecode
from addon.exchange.steps import Step
from addon.exchange.steps import Stream

__all__ = ["Answer", "AskOrigin", "Base", "Delivered", "EdgeContext", "Exchange", "FromCache",
           "NeedRecode", "Outcome", "Record", "Step", "Stream", "run"]
