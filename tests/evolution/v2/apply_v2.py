#!/usr/bin/python3
"""Release 2 of the order schema, as README "Changing the schema" has a developer write it, applied
to a copy of the source tree (never to the repository itself):

    /usr/bin/python3 tests/evolution/v2/apply_v2.py <copy of the source tree>

It adds
  (a) an event OrderNoteAdded, a command AddOrderNoteRequest (allowed from every status but
      CANCELLED), its rpc AddOrderNote with an HTTP route and an (es.access) rule (admin, or the
      customer who owns the order), and its decide function in app/rules.c;
  (b) two read-model columns in OrderSummary: payment_id (an OrderState field set by the existing
      OrderPaymentInitiated event: orders paid before the upgrade get it from their events) and
      note (the new event's field, through a new OrderState field);
  (c) an index on order_summary (payment_id).
proto/baseline stays the released v1: the plugin derives the migration steps from the diff.

Every edit is anchored on text that other edits of these files leave alone (a message's opening
line and its closing brace, a service's block, the end of a file); field numbers are the next free
ones. A missing anchor stops the script with the file and the anchor, and nothing is written."""
import os
import re
import sys

EVENT = '''
// Release 2: a customer's note on their order (e.g. "leave it with the neighbour").
message OrderNoteAdded {
  option (es.event) = { aggregate: "order" };
  string order_id = 1;
  string note = 2 [(es.field) = { state: "note" }];
  google.protobuf.Timestamp added_at = 3 [(es.field) = { state: "updated_at" }];
}
'''

COMMAND = '''
// Release 2: a note on an order that is not cancelled.
message AddOrderNoteRequest {
  option (es.command) = { aggregate: "order" allowed_from: ["!CANCELLED"] emits: ["OrderNoteAdded"] };
  string order_id = 1 [(es.field) = { required: true uuid: true }];
  string note = 2 [(es.field) = { required: true max_len: 500 }];
  string request_id = 14 [(es.field) = { max_len: 128 }];
  google.protobuf.Int64Value expected_version = 15;  // optimistic concurrency, when set
}
'''

RPC = '''  rpc AddOrderNote(AddOrderNoteRequest) returns (CommandResult) {
    option (es.access) = { allow: ["admin", "customer:owner"] };
    option (google.api.http) = { post: "/v1/orders/{order_id}/notes" body: "*" };
  }
'''

NEW_INDEX = '"payment_id"'


class AnchorMissing(Exception):
    pass


def fail(path, anchor, why="not found"):
    raise AnchorMissing(f"apply_v2: {path}: anchor {anchor!r} {why}")


def block(text, path, opening):
    """(start of the line holding `opening`, index of the '{' it opens, index of its matching '}')."""
    m = re.search(r"^[ \t]*" + re.escape(opening) + r"\s*\{", text, re.M)
    if not m:
        fail(path, opening + " {")
    depth, i = 0, m.end() - 1
    while i < len(text):
        if text[i] == "{":
            depth += 1
        elif text[i] == "}":
            depth -= 1
            if depth == 0:
                return m.start(), m.end() - 1, i
        i += 1
    fail(path, opening + " {", "has no closing brace")


def next_field_number(body):
    """The next free field number of a message body (reserved numbers included)."""
    used = [int(n) for n in re.findall(r"=\s*(\d+)\s*[;\[]", body)]
    for r in re.findall(r"^\s*reserved\s+([^;]*);", body, re.M):
        used += [int(n) for n in re.findall(r"\d+", r)]
    return max(used, default=0) + 1


def add_fields(text, path, message, fields):
    """Adds `type name` fields before the message's closing brace, numbered from its next free one."""
    _, open_i, close_i = block(text, path, f"message {message}")
    body = text[open_i:close_i]
    n = next_field_number(body)
    lines = ""
    for decl, comment in fields:
        name = decl.split()[-1]
        if re.search(r"\b" + re.escape(name) + r"\s*=", body):
            fail(path, f"message {message}", f"already has a field {name}: is release 2 applied already?")
        lines += f"  {decl} = {n};{'  // ' + comment if comment else ''}\n"
        n += 1
    return text[:close_i] + lines + text[close_i:]


def edit_state(text, path):
    return add_fields(text, path, "OrderState", [("string note", "the last note the customer added (release 2)")])


def edit_queries(text, path):
    text = add_fields(text, path, "OrderSummary", [("string payment_id", "release 2: from OrderPaymentInitiated"),
                                                   ("string note", "release 2: from OrderNoteAdded")])
    # The new index: appended to the projection's indexes list.
    start, open_i, close_i = block(text, path, "message OrderSummary")
    head = text[open_i:close_i]
    m = re.search(r"indexes:\s*\[", head)
    if not m:
        fail(path, "message OrderSummary ... indexes: [")
    end = head.find("]", m.end())
    if end < 0:
        fail(path, "indexes: [", "has no closing ]")
    if NEW_INDEX in head[m.end():end]:
        fail(path, "indexes: [", f"already lists {NEW_INDEX}")
    at = open_i + end
    return text[:at] + ", " + NEW_INDEX + text[at:]


def append(text, path, addition, must_have):
    for anchor in must_have:
        if anchor not in text:
            fail(path, anchor)
    return text.rstrip("\n") + "\n" + addition


def edit_events(text, path):
    if "message OrderNoteAdded" in text:
        fail(path, "message OrderNoteAdded", "exists already: is release 2 applied already?")
    return append(text, path, EVENT, ['import "google/protobuf/timestamp.proto";', "package orders.v1;"])


def edit_commands(text, path):
    if "message AddOrderNoteRequest" in text:
        fail(path, "message AddOrderNoteRequest", "exists already")
    return append(text, path, COMMAND, ['import "google/protobuf/wrappers.proto";', "package orders.v1;"])


def edit_service(text, path):
    _, _, close_i = block(text, path, "service OrderService")
    if "rpc AddOrderNote(" in text:
        fail(path, "rpc AddOrderNote(", "exists already")
    return text[:close_i] + RPC + text[close_i:]


def decide_function(rules):
    """The rule, written with whatever rules.c builds messages with today: the generated
    constructors (orders_v1_new_<Message>) when it calls them, else its NEW macro when it has one,
    else the arena and protobuf-c's init; its orders_timestamp when it defines one."""
    if re.search(r"\borders_v1_new_\w+\(", rules):
        ev = "    Orders__V1__OrderNoteAdded *ev = orders_v1_new_OrderNoteAdded(ctx->arena);\n"
    elif re.search(r"^#define NEW\(", rules, re.M):
        ev = "    Orders__V1__OrderNoteAdded *ev = NEW(ctx->arena, Orders__V1__OrderNoteAdded, orders__v1__order_note_added__init);\n"
    else:
        ev = ("    Orders__V1__OrderNoteAdded *ev = es_arena_alloc(ctx->arena, sizeof *ev);\n"
              "    orders__v1__order_note_added__init(ev);\n")
    if re.search(r"^Google__Protobuf__Timestamp \*orders_timestamp\(", rules, re.M):
        at = "    ev->added_at = orders_timestamp(ctx->arena, ctx->now_us);\n"
    else:
        at = ("    ev->added_at = es_arena_alloc(ctx->arena, sizeof *ev->added_at);\n"
              "    google__protobuf__timestamp__init(ev->added_at);\n"
              "    ev->added_at->seconds = ctx->now_us / 1000000;\n"
              "    ev->added_at->nanos = (int32_t)(ctx->now_us % 1000000) * 1000;\n")
    return ("\n/* Release 2: the guard (allowed_from \"!CANCELLED\") and the access rule (the owning customer) have\n"
            " * decided everything; the rule only records the note. */\n"
            "int orders_v1_decide_AddOrderNote(const es_decide_ctx *ctx, const Orders__V1__OrderState *state,\n"
            "                                  const Orders__V1__AddOrderNoteRequest *cmd, es_decision *out, es_error *err)\n"
            "{\n"
            "    (void)state;\n"
            "    (void)err;\n"
            + ev +
            "    ev->order_id = (char *)ctx->stream_id;\n"
            "    ev->note = cmd->note;\n"
            + at +
            "    return orders_v1_emit_OrderNoteAdded(out, ev);\n"
            "}\n")


def edit_rules(text, path):
    if "orders_v1_decide_AddOrderNote" in text:
        fail(path, "orders_v1_decide_AddOrderNote", "exists already")
    for anchor in ('#include "rules.h"', "int orders_v1_decide_CancelOrder("):
        if anchor not in text:
            fail(path, anchor)
    return text.rstrip("\n") + "\n" + decide_function(text)


EDITS = [
    ("proto/orders/v1/state.proto", edit_state),
    ("proto/orders/v1/events.proto", edit_events),
    ("proto/orders/v1/commands.proto", edit_commands),
    ("proto/orders/v1/service.proto", edit_service),
    ("proto/orders/v1/queries.proto", edit_queries),
    ("app/rules.c", edit_rules),
]


def apply(root):
    """Applies every edit under root, or none (an AnchorMissing names the file and the anchor)."""
    out = {}
    for rel, fn in EDITS:
        path = os.path.join(root, rel)
        try:
            with open(path) as f:
                text = f.read()
        except OSError as e:
            raise AnchorMissing(f"apply_v2: {rel}: cannot read ({e.strerror})") from e
        out[path] = fn(text, rel)
    for path, text in out.items():
        with open(path, "w") as f:
            f.write(text)
    return [rel for rel, _ in EDITS]


def main():
    if len(sys.argv) != 2:
        sys.exit("usage: apply_v2.py <copy of the source tree>")
    root = os.path.abspath(sys.argv[1])
    if os.path.realpath(root) == os.path.realpath(os.path.join(os.path.dirname(__file__), "..", "..", "..")):
        sys.exit("apply_v2: refusing to edit the repository itself; give it a copy")
    try:
        for rel in apply(root):
            print(f"apply_v2: edited {rel}")
    except AnchorMissing as e:
        sys.exit(str(e))


if __name__ == "__main__":
    main()
