"""Amazon SQS source and sink, through aiobotocore (works with moto and LocalStack too).

The source long-polls a queue, hands each batch to the intake and deletes only the
messages whose outcome says to acknowledge, after ``intake.deliver`` returned (their
starts or DLQ entries are durable by then). While the intake works on a batch (a slow
store, a full ``max_in_flight``), the batch's visibility is extended again and again, so
its messages do not reappear and get taken by another consumer mid-intake. Anything not
deleted (refused by the store, a killed process) reappears after ``visibility_timeout``
and its CloudEvents id (the SQS MessageId, or the id of a structured CloudEvent body)
makes the redelivery a duplicate, not a second execution.

The sink sends a CloudEvent as a structured JSON body, with its id, type and source as
message attributes; on a FIFO queue the event id is the deduplication id.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import time
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlsplit

from engine.connectors import envelope
from engine.connectors.types import ConnectorError, Delivery, Intake, SinkType, SourceType, source_schema

LAG_EVERY = 5.0  # seconds between looks at the queue's depth
HOLD_SHARE = 0.4  # extend a batch's visibility when this share of the timeout has passed
SECRET_KEYS = frozenset({"secret_access_key", "session_token"})

_CONNECTION: dict[str, Any] = {
    "queue_url": {"type": "string", "minLength": 1,
                  "description": "the queue's URL (e.g. https://sqs.eu-west-1.amazonaws.com/"
                                 "123456789012/orders); or give 'queue' (its name)"},
    "queue": {"type": "string", "minLength": 1, "maxLength": 80,
              "description": "the queue's name, looked up at endpoint_url / region when "
                             "queue_url is not given"},
    "endpoint_url": {"type": "string", "minLength": 1,
                     "description": "an SQS-compatible endpoint (moto, LocalStack); default: "
                                    "AWS's for the region, or the origin of a non-AWS queue_url"},
    "region": {"type": "string", "minLength": 1,
               "description": "AWS region; default: from an AWS queue_url, else the standard "
                              "chain (AWS_REGION, AWS_DEFAULT_REGION, ~/.aws/config)"},
    "access_key_id": {"type": "string", "minLength": 1,
                      "description": "AWS access key id; leave out to use the standard chain "
                                     "(environment, ~/.aws/credentials, profile, instance role)"},
    "secret_access_key": {"type": "string", "minLength": 1,
                          "description": "AWS secret access key (with access_key_id)"},
    "session_token": {"type": "string", "minLength": 1,
                      "description": "AWS session token for temporary credentials"},
    "profile": {"type": "string", "minLength": 1,
                "description": "a named profile of ~/.aws/config to take credentials from"},
}
# Either queue_url or queue (the message names the missing key instead of "anyOf failed").
_QUEUE_GIVEN = {"if": {"not": {"required": ["queue_url"]}}, "then": {"required": ["queue"]}}

SOURCE_CONFIG = {
    **source_schema({
        **_CONNECTION,
        "wait_time_seconds": {"type": "integer", "minimum": 0, "maximum": 20, "default": 20,
                              "description": "long polling: how long a receive waits for "
                                             "messages"},
        "batch": {"type": "integer", "minimum": 1, "maximum": 10, "default": 10,
                  "description": "messages per receive (SQS allows at most 10)"},
        "visibility_timeout": {"type": "integer", "minimum": 1, "maximum": 43200,
                               "default": 30,
                               "description": "seconds a received message stays hidden; it is "
                                              "extended while the engine takes it in, and a "
                                              "message not acknowledged reappears after it"},
        "type": {"type": "string", "minLength": 1, "default": "aws.sqs.message",
                 "description": "the CloudEvents type of messages whose body is not a "
                                "structured CloudEvent"},
        "event_source": {"type": "string", "minLength": 1,
                         "description": "the CloudEvents source of such messages (default: "
                                        "the queue's ARN, arn:aws:sqs:<region>:<account>:"
                                        "<name>)"},
    }),
    **_QUEUE_GIVEN,
}

SINK_CONFIG: dict[str, Any] = {
    "type": "object", "additionalProperties": False,
    "properties": {
        **_CONNECTION,
        "message_group_id": {"type": "string", "minLength": 1, "maxLength": 128,
                             "description": "FIFO queues: the message group (default: the "
                                            "event's partitionkey, else its subject, else "
                                            "its source)"},
        "delay_seconds": {"type": "integer", "minimum": 0, "maximum": 900,
                          "description": "standard queues: seconds before a sent message "
                                         "becomes visible"},
    },
    **_QUEUE_GIVEN,
}


# ---------------------------------------------------------------------- connection


def _region_of(queue_url: str | None) -> str | None:
    """``sqs.<region>.amazonaws.com`` in an AWS queue URL."""
    if not queue_url:
        return None
    host = urlsplit(queue_url).hostname or ""
    parts = host.split(".")
    if host.endswith(".amazonaws.com") and len(parts) >= 4 and parts[0] == "sqs":
        return parts[1]
    return None


def _endpoint_of(config: dict[str, Any]) -> str | None:
    """``endpoint_url``, else the origin of a queue URL that is not AWS's (moto, LocalStack)."""
    if config.get("endpoint_url"):
        return str(config["endpoint_url"])
    queue_url = config.get("queue_url")
    if queue_url:
        parts = urlsplit(str(queue_url))
        if parts.scheme and parts.netloc and not (parts.hostname or "").endswith(".amazonaws.com"):
            return f"{parts.scheme}://{parts.netloc}"
    return None


def _where(config: dict[str, Any]) -> str:
    return str(config.get("queue_url") or config.get("queue") or "?")


@contextlib.asynccontextmanager
async def _client(config: dict[str, Any], read_timeout: float) -> Any:
    """An aiobotocore SQS client for ``config`` (credentials from it or the AWS chain)."""
    from aiobotocore.config import AioConfig
    from aiobotocore.session import get_session

    session = get_session()
    if config.get("profile"):
        session.set_config_variable("profile", str(config["profile"]))
    options: dict[str, Any] = {
        "region_name": config.get("region") or _region_of(config.get("queue_url")),
        "endpoint_url": _endpoint_of(config),
        # read_timeout must outlast a long poll; standard retries cover throttling and blips
        "config": AioConfig(connect_timeout=5, read_timeout=read_timeout,
                            retries={"mode": "standard", "max_attempts": 3}),
    }
    if config.get("access_key_id"):
        options["aws_access_key_id"] = config["access_key_id"]
        options["aws_secret_access_key"] = config.get("secret_access_key")
        options["aws_session_token"] = config.get("session_token")
    async with contextlib.AsyncExitStack() as stack:
        try:
            client = await stack.enter_async_context(session.create_client("sqs", **options))
        except Exception as exc:
            raise _explain(exc, config, "connect") from None
        yield client


def _explain(exc: BaseException, config: dict[str, Any], action: str) -> Exception:
    """A transport error as a ConnectorError saying what failed and what to check."""
    from botocore import exceptions as boto

    if isinstance(exc, ConnectorError):
        return exc
    queue = _where(config)
    endpoint = _endpoint_of(config) or "AWS"
    if isinstance(exc, boto.ClientError):
        error = exc.response.get("Error", {})
        code, text = str(error.get("Code", "")), str(error.get("Message", ""))
        if code in ("AWS.SimpleQueueService.NonExistentQueue", "QueueDoesNotExist"):
            return ConnectorError(f"SQS queue {queue!r} does not exist at {endpoint}: create it, "
                                  "or fix queue_url / queue / region")
        if code in ("InvalidClientTokenId", "SignatureDoesNotMatch", "AccessDenied",
                    "AccessDeniedException", "UnrecognizedClientException"):
            return ConnectorError(f"SQS refused the credentials for {queue!r} ({code}: {text}): "
                                  "check access_key_id / secret_access_key / profile and the "
                                  "queue's policy")
        return ConnectorError(f"SQS {action} on {queue!r} failed: {code}: {text}")
    if isinstance(exc, boto.EndpointConnectionError):
        return ConnectorError(f"cannot reach the SQS endpoint {exc.kwargs.get('endpoint_url')} "
                              f"(connection refused or no route): check endpoint_url / region "
                              "and that the service is up")
    if isinstance(exc, boto.NoCredentialsError):
        return ConnectorError("no AWS credentials for SQS: set access_key_id and "
                              "secret_access_key in the connector's config, or provide them "
                              "the standard way (AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY, "
                              "~/.aws/credentials, a profile, an instance role)")
    if isinstance(exc, boto.NoRegionError):
        return ConnectorError("no AWS region for SQS: set 'region' in the connector's config "
                              "(or AWS_REGION), or give an AWS queue_url")
    if isinstance(exc, boto.BotoCoreError):
        return ConnectorError(f"SQS {action} on {queue!r} at {endpoint} failed: {exc}")
    return exc if isinstance(exc, Exception) else ConnectorError(str(exc))


def _arn(queue_url: str, region: str) -> str:
    """The queue's ARN (``arn:aws:sqs:<region>:<account>:<name>``), which names it wherever
    it is reached from; the URL itself when it does not have the account/name path."""
    parts = [p for p in urlsplit(queue_url).path.split("/") if p]
    if len(parts) == 2 and region:
        return f"arn:aws:sqs:{region}:{parts[0]}:{parts[1]}"
    return queue_url


async def _queue_url(client: Any, config: dict[str, Any]) -> str:
    if config.get("queue_url"):
        return str(config["queue_url"])
    if not config.get("queue"):
        raise ConnectorError("an SQS connector needs 'queue_url' or 'queue' (the queue's name) "
                             "in its config")
    try:
        reply = await client.get_queue_url(QueueName=str(config["queue"]))
    except Exception as exc:
        raise _explain(exc, config, "GetQueueUrl") from None
    return str(reply["QueueUrl"])


# ---------------------------------------------------------------------- source


class SqsSource:
    def __init__(self, name: str, config: dict[str, Any]):
        self.name = name
        self.config = config
        self.wait = int(config.get("wait_time_seconds", 20))
        self.batch = int(config.get("batch", 10))
        self.visibility = int(config.get("visibility_timeout", 30))
        self.type = str(config.get("type") or "aws.sqs.message")
        # True while an error of ours may be the one shown (a restart follows one); the
        # intake clears its own (a refused batch) when the store takes one again.
        self._reported = True

    async def run(self, intake: Intake) -> None:
        async with _client(self.config, read_timeout=self.wait + 30) as client:
            url = await _queue_url(client, self.config)
            source = str(self.config.get("event_source")
                         or _arn(url, str(client.meta.region_name or "")))
            next_lag = 0.0
            while True:
                if time.monotonic() >= next_lag:
                    intake.report_lag(await self._depth(client, url))
                    next_lag = time.monotonic() + LAG_EVERY
                messages = await self._receive(client, url)
                if self._reported:  # the queue answers again: the transport error is over
                    intake.report_error(None)
                    self._reported = False
                if not messages:
                    continue
                deliveries = [self._delivery(m, source) for m in messages]
                outcomes = await self._deliver_held(client, url, intake, deliveries)
                done = [d.token for d, o in zip(deliveries, outcomes, strict=True)
                        if o.acknowledge]
                if done:
                    intake.acknowledged(await self._delete(client, url, done, intake))

    async def _receive(self, client: Any, url: str) -> list[dict[str, Any]]:
        try:
            reply = await client.receive_message(
                QueueUrl=url, MaxNumberOfMessages=self.batch, WaitTimeSeconds=self.wait,
                VisibilityTimeout=self.visibility,
                # (the current name of the deprecated AttributeNames)
                MessageSystemAttributeNames=["ApproximateReceiveCount", "SentTimestamp"])
        except Exception as exc:
            raise _explain(exc, self.config, "ReceiveMessage") from None
        return list(reply.get("Messages") or [])

    async def _depth(self, client: Any, url: str) -> float:
        """Messages waiting plus those received and not yet deleted."""
        try:
            reply = await client.get_queue_attributes(
                QueueUrl=url, AttributeNames=["ApproximateNumberOfMessages",
                                              "ApproximateNumberOfMessagesNotVisible"])
        except Exception as exc:
            raise _explain(exc, self.config, "GetQueueAttributes") from None
        found = reply.get("Attributes") or {}
        return float(int(found.get("ApproximateNumberOfMessages", 0))
                     + int(found.get("ApproximateNumberOfMessagesNotVisible", 0)))

    def _delivery(self, message: dict[str, Any], source: str) -> Delivery:
        attributes = message.get("Attributes") or {}
        attempt = int(attributes.get("ApproximateReceiveCount") or 1)
        return Delivery(self._event(message, source), attempt, message["ReceiptHandle"])

    def _event(self, message: dict[str, Any], source: str) -> dict[str, Any]:
        """The message as a CloudEvent: a structured one as sent (the intake checks it and
        dead-letters a broken one), else a new envelope around its JSON or text body."""
        message_id = str(message["MessageId"])
        body = message.get("Body") or ""
        try:
            data: Any = json.loads(body)
            text = False
        except (ValueError, RecursionError):  # not JSON, or nested past the parser: text
            data, text = body, True
        if isinstance(data, dict) and "specversion" in data:
            event = dict(data)
            if not isinstance(event.get("id"), str) or not event["id"]:
                event["id"] = message_id  # stable, so a broken one is dead-lettered once
            return event
        sent = (message.get("Attributes") or {}).get("SentTimestamp")
        moment = datetime.fromtimestamp(int(sent) / 1000, UTC) if sent else None
        return envelope.make(source, self.type, data, id=message_id, time=moment,
                             datacontenttype="text/plain" if text else "application/json")

    async def _deliver_held(self, client: Any, url: str, intake: Intake,
                            deliveries: Sequence[Delivery]) -> list[Any]:
        """``intake.deliver``, keeping the batch hidden for as long as it takes."""
        holder = asyncio.ensure_future(self._hold(client, url, [d.token for d in deliveries],
                                                  intake))
        try:
            return await intake.deliver(deliveries)
        finally:
            holder.cancel()
            await asyncio.gather(holder, return_exceptions=True)

    async def _hold(self, client: Any, url: str, handles: list[str], intake: Intake) -> None:
        every = max(0.2, self.visibility * HOLD_SHARE)
        entries = [{"Id": str(i), "ReceiptHandle": h, "VisibilityTimeout": self.visibility}
                   for i, h in enumerate(handles)]
        while True:
            await asyncio.sleep(every)
            try:
                reply = await client.change_message_visibility_batch(QueueUrl=url,
                                                                     Entries=entries)
            except Exception as exc:  # they may reappear: the redelivery is a duplicate
                self._reported = True
                intake.report_error(str(_explain(exc, self.config, "ChangeMessageVisibility")))
                continue
            failed = reply.get("Failed") or []
            if failed:
                self._reported = True
                intake.report_error(f"could not keep {len(failed)} messages hidden while they "
                                    f"were taken in ({failed[0].get('Message')}); they may be "
                                    "delivered again (as duplicates)")

    async def _delete(self, client: Any, url: str, handles: list[str], intake: Intake) -> int:
        """DeleteMessageBatch (10 at most a call); returns how many were deleted."""
        deleted = 0
        for start in range(0, len(handles), 10):
            entries = [{"Id": str(i), "ReceiptHandle": h}
                       for i, h in enumerate(handles[start:start + 10])]
            try:
                reply = await client.delete_message_batch(QueueUrl=url, Entries=entries)
            except Exception as exc:
                raise _explain(exc, self.config, "DeleteMessageBatch") from None
            failed = reply.get("Failed") or []
            deleted += len(reply.get("Successful") or [])
            if failed:  # e.g. an expired receipt handle: it comes back and is a duplicate then
                self._reported = True
                intake.report_error(f"SQS did not delete {len(failed)} taken messages "
                                    f"({failed[0].get('Message')}); they will be delivered "
                                    "again and acknowledged as duplicates")
        return deleted

    async def close(self) -> None:
        pass  # the client is closed when run() leaves its context


# ---------------------------------------------------------------------- sink


class SqsSink:
    def __init__(self, name: str, config: dict[str, Any]):
        self.name = name
        self.config = config
        self._stack: contextlib.AsyncExitStack | None = None
        self._client: Any = None
        self._url: str | None = None
        self._opening = asyncio.Lock()

    async def _open(self) -> tuple[Any, str]:
        async with self._opening:
            if self._client is None or self._url is None:
                stack = contextlib.AsyncExitStack()
                try:
                    client = await stack.enter_async_context(_client(self.config, 60))
                    self._url = await _queue_url(client, self.config)
                except BaseException:
                    await stack.aclose()
                    raise
                self._stack, self._client = stack, client
            return self._client, self._url

    async def send(self, event: dict[str, Any]) -> dict[str, Any]:
        client, url = await self._open()
        request: dict[str, Any] = {
            "QueueUrl": url, "MessageBody": json.dumps(event, separators=(",", ":")),
            "MessageAttributes": {
                f"ce-{key}": {"DataType": "String", "StringValue": str(event[key])}
                for key in ("id", "type", "source") if event.get(key)},
        }
        if url.endswith(".fifo"):
            group = (self.config.get("message_group_id") or event.get("partitionkey")
                     or event.get("subject") or event.get("source") or "default")
            request["MessageGroupId"] = str(group)[:128]
            request["MessageDeduplicationId"] = _dedup_id(str(event.get("id", "")))
        elif self.config.get("delay_seconds") is not None:
            request["DelaySeconds"] = int(self.config["delay_seconds"])
        try:
            reply = await client.send_message(**request)
        except Exception as exc:
            raise _explain(exc, self.config, "SendMessage") from None
        answer = {"message_id": reply["MessageId"]}
        if reply.get("SequenceNumber"):
            answer["sequence_number"] = reply["SequenceNumber"]
        return answer

    async def close(self) -> None:
        stack, self._stack, self._client, self._url = self._stack, None, None, None
        if stack is not None:
            await stack.aclose()


def _dedup_id(event_id: str) -> str:
    """The event id (SQS takes up to 128 of its characters), hashed when it does not fit."""
    if event_id and len(event_id) <= 128 and event_id.isascii() and event_id.isprintable():
        return event_id
    return hashlib.sha256(event_id.encode()).hexdigest()


def register(registry: Any) -> None:
    registry.add_source(SourceType(
        name="source.sqs", factory=SqsSource,
        description="Amazon SQS (or moto / LocalStack): long-polls a queue; a message is "
                    "deleted once its execution's start is recorded",
        schema=SOURCE_CONFIG, secret_keys=SECRET_KEYS, lag_unit="messages",
        example={"queue_url": "https://sqs.eu-west-1.amazonaws.com/123456789012/orders",
                 "type": "order.created"}))
    registry.add_sink(SinkType(
        name="sink.sqs", factory=SqsSink,
        description="Amazon SQS: sends the event as a structured CloudEvent (FIFO queues: "
                    "deduplicated by event id)",
        schema=SINK_CONFIG, secret_keys=SECRET_KEYS,
        example={"queue_url": "https://sqs.eu-west-1.amazonaws.com/123456789012/out"}))
