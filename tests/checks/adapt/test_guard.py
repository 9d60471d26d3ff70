"""checks.adapt.guard: every way a call into the layer can go wrong becomes a LayerFault naming the stage,
the cause and the input shapes; what the layer prints is captured; and the process state (the
alarm, its handler, the address-space limit) is the same after the call as before."""

from __future__ import annotations

import signal
import sys
import time

import numpy as np
import pytest

from checks.adapt.guard import Cause, LayerFault, Limits, Transcript, call

resource = pytest.importorskip("resource")
needs_alarm = pytest.mark.skipif(not hasattr(signal, "setitimer"), reason="no SIGALRM interval timer here")
FAST = Limits(seconds=0.2)  # only for calls that never end by themselves: the alarm is the only way out
ROOMY = Limits(seconds=60)  # for calls that return or raise: a limit ~1000x their time, never the outcome
SMALL_MEMORY = Limits(seconds=None, memory_bytes=512 * 1024**2)
SHAPES = "input (2, 3, 4, 4)"


@pytest.fixture
def process_state():
    """Asserts, after the test, that the alarm, its handler and the memory limit are as before."""
    before = (signal.getitimer(signal.ITIMER_REAL), signal.getsignal(signal.SIGALRM))
    limit = resource.getrlimit(resource.RLIMIT_AS)
    yield
    assert (signal.getitimer(signal.ITIMER_REAL), signal.getsignal(signal.SIGALRM)) == before
    assert resource.getrlimit(resource.RLIMIT_AS) == limit


def fault_of(fn, *args, limits=ROOMY, transcript=None, stage="forward") -> LayerFault:
    with pytest.raises(LayerFault) as info:
        call(stage, fn, *args, shapes=SHAPES, limits=limits, transcript=transcript)
    return info.value


def test_a_well_behaved_call_returns_its_value(process_state):
    assert call("forward", lambda a, b: a + b, 2, 3, shapes=SHAPES, limits=ROOMY) == 5


def test_an_exception_names_the_stage_the_exception_and_the_input_shapes(process_state):
    def boom(x):
        raise ValueError(f"cannot handle {x.shape}")

    fault = fault_of(boom, np.zeros((2, 3)), stage="backward")
    assert (fault.stage, fault.shapes) == ("backward", SHAPES)
    assert (fault.cause, fault.detail) == (Cause.RAISED, "raised ValueError: cannot handle (2, 3)")
    assert str(fault) == f"backward: raised ValueError: cannot handle (2, 3) (inputs: {SHAPES})"
    assert isinstance(fault.__cause__, ValueError)


def test_a_fault_without_shapes_reads_as_stage_and_cause():
    assert str(LayerFault("construct", "raised TypeError: x")) == "construct: raised TypeError: x"


@pytest.mark.parametrize("code, shown", [(3, "3"), (None, "None"), ("bye", "'bye'")])
def test_sys_exit_is_a_fault_not_an_exit(process_state, code, shown):
    fault = fault_of(lambda: sys.exit(code))
    assert (fault.cause, fault.detail) == (Cause.EXIT, f"called sys.exit({shown})")


def test_a_base_exception_of_another_kind_is_a_fault(process_state):
    class Odd(BaseException):
        pass

    def odd():
        raise Odd("strange")

    fault = fault_of(odd)
    assert (fault.cause, fault.detail) == (Cause.RAISED, "raised Odd: strange")


@needs_alarm
def test_a_pure_python_infinite_loop_is_stopped_by_the_time_limit(process_state):
    def spin():
        while True:
            pass

    fault = fault_of(spin, limits=FAST)  # never returns by itself: only the alarm can end it
    assert (fault.cause, fault.detail) == (Cause.TIMEOUT, "did not return within 0.2 s (hang or infinite loop?)")
    assert fault.shapes == SHAPES


@needs_alarm
def test_a_sleep_is_stopped_by_the_time_limit(process_state):
    fault = fault_of(time.sleep, 30, limits=FAST)  # a sleep that ran out would return None, not fault
    assert fault.cause is Cause.TIMEOUT and "did not return within 0.2 s" in fault.detail


@needs_alarm
def test_a_layer_swallowing_every_exception_still_cannot_swallow_the_time_limit(process_state):
    def stubborn():
        while True:
            try:
                time.sleep(30)
            except Exception:
                pass

    assert fault_of(stubborn, limits=FAST).cause is Cause.TIMEOUT


@needs_alarm
def test_a_slow_call_inside_the_limit_is_not_stopped(process_state):
    assert call("forward", lambda: time.sleep(0.05) or "done", limits=ROOMY) == "done"


@needs_alarm
def test_no_alarm_is_left_behind_to_fire_later(process_state):
    call("forward", lambda: None, limits=FAST)
    time.sleep(0.3)  # an alarm still armed would raise here, outside any guard


def test_an_impossible_allocation_is_a_memory_fault(process_state):
    fault = fault_of(np.ones, 10**11, limits=SMALL_MEMORY)
    assert fault.cause is Cause.MEMORY and fault.detail.startswith("ran out of memory (budget 0.5 GiB)")


def test_an_allocation_beyond_the_budget_is_a_memory_fault_even_when_the_machine_could_map_it(process_state):
    # 3 GB of untouched np.empty is mapped without complaint by an unconstrained process ...
    unlimited = Limits(seconds=None, memory_bytes=None)
    assert call("forward", np.empty, int(3e9), np.uint8, limits=unlimited).nbytes == int(3e9)
    # ... and refused under the cap
    fault = fault_of(np.empty, int(3e9), np.uint8, limits=SMALL_MEMORY)
    assert fault.cause is Cause.MEMORY


def test_an_allocation_within_the_budget_succeeds(process_state):
    out = call("forward", np.ones, 10**6, limits=SMALL_MEMORY)
    assert out.shape == (10**6,)


def test_printing_is_captured_into_the_transcript_and_not_shown(capsys, process_state):
    transcript = Transcript()

    def chatty(x):
        print("forward called with", x)
        print("debug!", file=sys.stderr)
        return x * 2

    assert call("forward", chatty, 21, limits=ROOMY, transcript=transcript) == 42
    call("backward", print, "second call", limits=ROOMY, transcript=transcript)
    out, err = capsys.readouterr()
    assert out == "" and err == ""
    assert transcript.text == "forward called with 21\ndebug!\nsecond call\n"
    assert len(transcript.chunks) == 2


def test_printing_before_a_failure_is_still_captured(capsys, process_state):
    transcript = Transcript()

    def chatty_then_raise():
        print("about to fail")
        raise RuntimeError("failed")

    fault_of(chatty_then_raise, transcript=transcript)
    assert transcript.text == "about to fail\n"
    assert capsys.readouterr().out == ""


def test_a_silent_call_adds_nothing_to_the_transcript(process_state):
    transcript = Transcript()
    call("forward", lambda: 1, limits=ROOMY, transcript=transcript)
    assert transcript.chunks == [] and transcript.text == ""


def test_keyboard_interrupt_passes_through(process_state):
    def interrupted():
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        call("forward", interrupted, limits=ROOMY)


def test_a_layer_fault_from_an_adapter_passes_through_unchanged(process_state):
    original = LayerFault("backward", "gradient 'dW' not found on the layer", "input (1, 1)")

    def adapter():
        raise original

    fault = fault_of(adapter, stage="forward")
    assert fault is original
    assert (fault.stage, fault.detail, fault.shapes) == (
        "backward",
        "gradient 'dW' not found on the layer",
        "input (1, 1)",
    )


def test_limits_default_to_ten_seconds_and_two_gibibytes():
    assert Limits() == Limits(seconds=10.0, memory_bytes=2 * 1024**3)


def test_unlimited_limits_still_turn_exceptions_into_faults(process_state):
    fault = fault_of(lambda: 1 / 0, limits=Limits(seconds=None, memory_bytes=None))
    assert (fault.cause, fault.detail) == (Cause.RAISED, "raised ZeroDivisionError: division by zero")
