"""Fault injection: what a car's bus and power supply do to a device.

One module per job: ``traffic`` (transforms of the frame records),
``signals`` (a sensor that lies or dies, forged frames: decoded, changed and
re-encoded with a valid CHECKSUM),
``arbitration`` (the bus the flood runs on), ``power`` (power cuts and an independent
reader of the trip store), ``busoff`` (the board loop against a controller
that goes bus-off). Their public names are here too.

Two levels:

* **Traffic faults** — composable transforms over a ``record.DTYPE`` array
  (the 24-byte stream records), vectorised with numpy. Each is a small frozen
  dataclass (hashable, printable: usable as a pytest id or a cache key);
  ``apply(records, faults, seed)`` runs them in order and returns the records
  sorted by timestamp (stable: frames with equal timestamps keep their order).

  =====================  ==================================================
  ``Drop``               no frame of an ID (or of any ID) for a while
  ``CorruptCounter``     COUNTER jumps (the CHECKSUM is recomputed, so the
                         counter check is what must catch it)
  ``CorruptChecksum``    CHECKSUM byte wrong
  ``WrongDlc``           DLC other than the DBC's
  ``ErrorFrames``        error frames at a rate
  ``RemoteFrames``       remote (RTR) frames at a rate, on the car's IDs
  ``RandomFrames``       random IDs, DLC 0-8, random data, error and remote
  ``Flood``              a node queues frames of an ID at ``load`` of the
                         bus and arbitrates with the car's own frames
  ``TimestampJump``      the clock jumps forward (or back) at a moment
  ``BusOff``             error frames, then silence: the stream a device
                         sees while its controller is bus-off
  ``ScaleSignals``       signals times a factor (0: dead, 1/3.6: m/s)
  ``FreezeSignals``      signals stuck at a value
  ``Forge``              a foreign node's frames, repeated COUNTER, just
                         before each 10 Hz tick
  ``SameTimeSpike``      single frames at the timestamp of the car's own
  =====================  ==================================================

  Times (``t0``, ``duration``) are seconds of record time (the simulator's
  drives start at 0).

* **Process faults** — ``run_with_power_cuts`` kills the firmware process
  (SIGKILL: a power cut) at chosen record positions, optionally tears the slot
  file it was writing, restarts it on the rest of the drive with the same data
  directory and checks every restore against an independent reader of the
  trip store (``read_trip_store``). ``busoff_recovery`` runs the firmware's
  board loop (``app.run_port`` with ``MachineCANPort``) in MicroPython against
  a ``machine.CAN`` stand-in that goes bus-off, and reports its restarts.
"""

from .arbitration import arbitrate, bus_occupancy
from .busoff import busoff_recovery
from .power import (
    PAYLOAD_LEN,
    SLOTS,
    TEAR_MODES,
    Cut,
    PowerCutReport,
    crc16_ccitt,
    plan_cuts,
    read_slot,
    read_trip_store,
    run_with_power_cuts,
    save_points,
    tear_slot,
)
from .signals import Forge, FreezeSignals, SameTimeSpike, ScaleSignals
from .traffic import (
    NOMINAL_BITRATE,
    BusOff,
    CorruptChecksum,
    CorruptCounter,
    Drop,
    ErrorFrames,
    Flood,
    RandomFrames,
    RemoteFrames,
    TimestampJump,
    WrongDlc,
    apply,
    known_ids,
    random_frames,
)

__all__ = [
    "PAYLOAD_LEN", "SLOTS", "TEAR_MODES", "Cut", "PowerCutReport", "crc16_ccitt", "plan_cuts", "read_slot",
    "read_trip_store", "run_with_power_cuts", "save_points", "tear_slot", "busoff_recovery", "NOMINAL_BITRATE",
    "BusOff", "CorruptChecksum", "CorruptCounter", "Drop", "ErrorFrames", "Flood", "RandomFrames", "RemoteFrames",
    "TimestampJump", "WrongDlc", "apply", "arbitrate", "bus_occupancy", "known_ids", "random_frames",
    "Forge", "FreezeSignals", "SameTimeSpike", "ScaleSignals",
]
