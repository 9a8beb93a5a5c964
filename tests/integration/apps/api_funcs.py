"""Functions registered from a config file's [functions] table (test_api.py)."""
import hornbeam_erlang as hb

try:
    from _hornbeam import interpreter_id
except ImportError:
    def interpreter_id():
        return 0


def double(x):
    return {"value": 2 * x, "interp": interpreter_id()}


def remote_add(a, b):
    """For rpc_call(node(), "api_funcs", "remote_add", [a, b])."""
    hb.state_incr("rpc_calls")
    return a + b
