"""One request through the edge, phase by phase, in Cloudflare's order (machine.py), free of
any proxy library: the request phases (request.py), the content phase (content.py), the
re-coding (recode.py), the response-headers phase (headers.py), what the visitor gets
(visitor.py) and the last phase's invariant (egress.py), the edge's own answers
(answers.py, errors.py) and the log record (record.py). run.py drives it without a proxy.
"""

from addon.exchange.answers import Answer
from addon.exchange.machine import AskOrigin
from addon.exchange.machine import Base
from addon.exchange.machine import Delivered
from addon.exchange.machine import EdgeContext
from addon.exchange.machine import Exchange
from addon.exchange.machine import FromCache
from addon.exchange.machine import NeedRecode
from addon.exchange.machine import Step
from addon.exchange.machine import Stream
from addon.exchange.record import Record
from addon.exchange.run import Outcome
from addon.exchange.run import run

__all__ = ["Answer", "AskOrigin", "Base", "Delivered", "EdgeContext", "Exchange", "FromCache",
           "NeedRecode", "Outcome", "Record", "Step", "Stream", "run"]
