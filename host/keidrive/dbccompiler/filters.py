"""Hardware acceptance filters for the frame ids a node needs.

Two targets:

* MicroPython's ``machine.CAN.set_filters()``: a list of ``(id, mask, flags)``;
  a frame passes when ``frame_id & mask == id & mask`` and its id kind
  (standard/extended) matches the filter's ``CAN.FLAG_EXT_ID`` flag. The
  controller's ``CAN.filters_max`` bounds the list, so ids are merged
  greedily into at most ``max_filters`` masks.
* The MCP2515: two masks, RXM0 shared by RXF0-1 and RXM1 by RXF2-5. Every
  filter compares the bits its mask selects; standard-frame filters also
  compare the EID mask bits against data bytes 0-1, so any mask used for
  standard frames keeps its EID bits clear.

The cost minimised is the number of unneeded ids that pass, counted as a
fraction of each id space (an 11-bit false accept weighs 2**18 29-bit ones),
which treats every id of a space as equally likely on the bus.
"""

import heapq
import itertools
from dataclasses import dataclass

from ..errors import KeidriveError

STANDARD_BITS = 11
EXTENDED_BITS = 29
# The MCP2515's mask registers hold the 11 SID bits above 18 EID bits.
EID_BITS = EXTENDED_BITS - STANDARD_BITS
SID_MASK_29 = ((1 << STANDARD_BITS) - 1) << EID_BITS
DEFAULT_MAX_FILTERS = 8
MCP2515_FILTERS_PER_MASK = (2, 4)
# Ids the MCP2515 search may put behind RXM0: all of them up to this many,
# else this many chosen by how much their removal narrows RXM1.
MCP2515_CANDIDATES = 16


@dataclass(frozen=True)
class MaskFilter:
    id: int
    mask: int
    extended: bool

    @property
    def width(self) -> int:
        return EXTENDED_BITS if self.extended else STANDARD_BITS

    @property
    def size(self) -> int:
        """How many ids of its space the filter accepts."""
        return 1 << (self.width - bin(self.mask).count("1"))

    def accepts(self, frame_id: int, extended: bool) -> bool:
        return extended == self.extended and frame_id & self.mask == self.id & self.mask


@dataclass(frozen=True)
class FalseAccepts:
    """Unneeded ids that pass, per id space."""

    standard: int
    standard_ratio: float
    extended: int
    extended_ratio: float

    def __str__(self) -> str:
        return (
            f"11-bit: {self.standard} false accepts ({self.standard_ratio:.4%}); "
            f"29-bit: {self.extended} false accepts ({self.extended_ratio:.7%})"
        )


def _weighted_false_accepts(filters: list[MaskFilter], needed: int) -> int:
    accepted = sum(f.size << (0 if f.extended else EID_BITS) for f in filters)
    return accepted - needed


@dataclass
class SearchWork:
    """The filter searches' deterministic work, which their time is proportional to.

    ``merges``: candidate machine.CAN merges costed (O(1) each);
    ``masked_ids``: ids masked and hashed by the MCP2515 mask search.
    Tests bound these instead of wall time.
    """

    merges: int = 0
    masked_ids: int = 0


@dataclass(frozen=True)
class _Group:
    """Ids merged behind one machine.CAN filter, summarised by their bitwise AND and OR."""

    all_ones: int
    any_ones: int
    count: int
    extended: bool

    def merged(self, other: "_Group") -> "_Group":
        return _Group(self.all_ones & other.all_ones, self.any_ones | other.any_ones,
                      self.count + other.count, self.extended)

    @property
    def filter(self) -> MaskFilter:
        """The narrowest single filter passing every id: mask = bits on which they agree."""
        width = EXTENDED_BITS if self.extended else STANDARD_BITS
        mask = ((1 << width) - 1) & ~(self.all_ones ^ self.any_ones)
        return MaskFilter(self.all_ones & mask, mask, self.extended)

    @property
    def cost(self) -> int:
        weight = 1 if self.extended else 1 << EID_BITS
        return ((1 << bin(self.all_ones ^ self.any_ones).count("1")) - self.count) * weight


def machine_can_filters(
    standard_ids: set[int], extended_ids: set[int], max_filters: int = DEFAULT_MAX_FILTERS,
    work: SearchWork | None = None, wide: dict[int, int] | None = None,
) -> list[MaskFilter] | None:
    """At most ``max_filters`` filters passing every needed id, or None when nothing is needed.

    Agglomerative: start with one exact filter per id and merge the pair of
    same-kind groups whose merge adds the fewest false accepts. A group is
    kept as its ids' AND and OR, so a merge's cost is O(1); candidate merges
    sit in a heap (stale ones skipped), O(n**2 log n) for n ids. ``wide``: extended
    ids that stand for every id agreeing on the bits of their mask (J1939 parameter
    groups), each starting as the group of all of those.
    """
    wide = wide or {}
    kinds = (len(standard_ids) > 0) + (len(extended_ids) > 0)
    if kinds == 0:
        return None
    if max_filters < kinds:
        raise KeidriveError(f"{max_filters} hardware filter(s) cannot pass both standard and extended ids")
    groups: dict[int, _Group] = {}
    for extended, ids in ((False, standard_ids), (True, extended_ids)):
        for frame_id in sorted(ids):
            free = ((1 << EXTENDED_BITS) - 1) & ~wide[frame_id] if extended and frame_id in wide else 0
            groups[len(groups)] = _Group(frame_id & ~free, frame_id | free, 1 << bin(free).count("1"), extended)
    heap: list[tuple[int, int, int]] = []

    work = work or SearchWork()

    def push(a: int, b: int) -> None:
        # Keys grow with creation, so (cost, a, b) breaks ties as a scan of
        # the groups in creation order would: the first cheapest pair.
        if groups[a].extended == groups[b].extended:
            work.merges += 1
            merged = groups[a].merged(groups[b])
            heapq.heappush(heap, (merged.cost - groups[a].cost - groups[b].cost, a, b))

    for a, b in itertools.combinations(list(groups), 2):
        push(a, b)
    next_key = len(groups)
    while len(groups) > max_filters:
        _, a, b = heapq.heappop(heap)
        if a not in groups or b not in groups:
            continue  # one side was merged already
        groups[next_key] = groups.pop(a).merged(groups.pop(b))
        for other in list(groups)[:-1]:
            push(other, next_key)
        next_key += 1
    filters = [group.filter for group in groups.values()]
    return sorted(filters, key=lambda f: (f.extended, f.id, f.mask))


# --- MCP2515 -------------------------------------------------------------------


def _register_value(frame_id: int, extended: bool) -> int:
    """An id as the MCP2515's 29-bit SID:EID register layout sees it."""
    return frame_id if extended else frame_id << EID_BITS


@dataclass(frozen=True)
class Mcp2515Group:
    """One mask and the filters sharing it. ``mask`` is in 29-bit register layout."""

    mask: int
    filters: tuple[tuple[int, bool], ...]

    def mask_filters(self) -> list[MaskFilter]:
        result = []
        for frame_id, extended in self.filters:
            mask = self.mask if extended else self.mask >> EID_BITS
            result.append(MaskFilter(frame_id & mask, mask, extended))
        return result

    @property
    def mask_entry(self) -> tuple[int, bool]:
        """``(mask, extended)``: 29-bit register layout if extended, else the 11 SID bits."""
        if self.mask & ~SID_MASK_29 or any(extended for _, extended in self.filters):
            return (self.mask, True)
        return (self.mask >> EID_BITS, False)


def _mcp2515_group(items: frozenset[tuple[int, bool]], n_filters: int, work: SearchWork,
                   wide: dict[int, int]) -> Mcp2515Group:
    """A mask keeping as many bits as possible while ``items`` need at most ``n_filters`` filters
    (and none of the bits a ``wide`` id leaves free)."""
    if not items:
        return Mcp2515Group((1 << EXTENDED_BITS) - 1, ())
    # Standard frames would match EID mask bits against data bytes: keep them clear.
    mask = SID_MASK_29 if any(not extended for _, extended in items) else (1 << EXTENDED_BITS) - 1
    for frame_id, extended in items:
        if extended and frame_id in wide:
            mask &= wide[frame_id]
    # Each id as one int, its kind (EXIDE) in bit 29 above the register value:
    # sets of ints hash several times faster than sets of tuples.
    kind_bit = 1 << EXTENDED_BITS
    values = [_register_value(i, extended) | (kind_bit if extended else 0) for i, extended in items]

    def distinct(candidate_mask: int) -> set[int]:
        work.masked_ids += len(values)
        candidate_mask |= kind_bit
        return {value & candidate_mask for value in values}

    while len(distinct(mask)) > n_filters:
        disagreeing = [bit for bit in range(EXTENDED_BITS)
                       if mask >> bit & 1 and len({v >> bit & 1 for v in values}) > 1]
        # Drop the bit that merges the most filters; on ties, the lowest bit
        # (neighbouring ids differ in low bits).
        bit = min(disagreeing, key=lambda b: (len(distinct(mask & ~(1 << b))), b))
        mask &= ~(1 << bit)
    filters = []
    for value in sorted(distinct(mask), key=lambda item: (item >> EXTENDED_BITS, item)):
        register, extended = value & (kind_bit - 1), bool(value & kind_bit)
        filters.append((register if extended else register >> EID_BITS, extended))
    return Mcp2515Group(mask, tuple(filters))


def _mcp2515_cost(groups: list[Mcp2515Group], needed: int) -> int:
    return _weighted_false_accepts([f for group in groups for f in group.mask_filters()], needed)


def mcp2515_filters(
    standard_ids: set[int], extended_ids: set[int], work: SearchWork | None = None,
    wide: dict[int, int] | None = None,
) -> tuple[list[tuple[int, bool]], list[tuple[int, bool]]]:
    """``(masks, filters)``: 2 masks (RXM0, RXM1) and 6 filters (RXF0-1 use RXM0, RXF2-5 RXM1).

    Search: every split putting at most two candidate ids behind RXM0 (such
    a pair is matched exactly), then moves of single candidates between the
    masks while that lowers the false accepts. With more than
    MCP2515_CANDIDATES ids, the candidates are the MCP2515_CANDIDATES ids
    whose removal narrows RXM1 most, which bounds the search at O(n**2)
    masked ids instead of O(n**3). Unused filters repeat a used one, since a
    cleared filter register would accept id 0. ``wide``: as machine_can_filters.
    """
    work = work or SearchWork()
    wide = wide or {}
    items = sorted([(i, False) for i in standard_ids] + [(i, True) for i in extended_ids], key=lambda x: (x[1], x[0]))
    if not items:
        # Nothing to receive: exact masks on an id we would ignore anyway.
        groups = [Mcp2515Group((1 << EXTENDED_BITS) - 1, ()), Mcp2515Group((1 << EXTENDED_BITS) - 1, ())]
        return [g.mask_entry for g in groups], [(0, False)] * 6
    everything = frozenset(items)
    cache: dict[tuple[frozenset, int], Mcp2515Group] = {}

    def split_cost(first: frozenset) -> tuple[int, list[Mcp2515Group]]:
        groups = []
        for part, n_filters in zip((first, everything - first), MCP2515_FILTERS_PER_MASK):
            if (part, n_filters) not in cache:
                cache[part, n_filters] = _mcp2515_group(part, n_filters, work, wide)
            groups.append(cache[part, n_filters])
        return _mcp2515_cost(groups, len(items)), groups

    candidates = items
    if len(items) > MCP2515_CANDIDATES:
        ranked = sorted(items, key=lambda item: (split_cost(frozenset([item]))[0], item))
        candidates = sorted(ranked[:MCP2515_CANDIDATES], key=lambda x: (x[1], x[0]))
    splits = [frozenset(c) for size in (0, 1, 2) for c in itertools.combinations(candidates, size)]
    best_first = min(splits, key=lambda c: (split_cost(c)[0], sorted(c)))
    improved = True
    while improved:
        improved = False
        for item in candidates:
            moved = best_first ^ {item}
            if split_cost(moved)[0] < split_cost(best_first)[0]:
                best_first, improved = moved, True
    _, groups = split_cost(best_first)
    masks = [group.mask_entry for group in groups]
    filters = []
    for group, n_filters in zip(groups, MCP2515_FILTERS_PER_MASK):
        used = list(group.filters) or [next(iter(g.filters)) for g in groups if g.filters][:1]
        filters += (used * n_filters)[:n_filters]
    return masks, filters


def mcp2515_mask_filters(masks: list[tuple[int, bool]], filters: list[tuple[int, bool]]) -> list[MaskFilter]:
    """The generic view of an MCP2515 configuration, for false-accept reports."""
    result = []
    owner = [0] * MCP2515_FILTERS_PER_MASK[0] + [1] * MCP2515_FILTERS_PER_MASK[1]
    for (frame_id, extended), mask_index in zip(filters, owner):
        mask, mask_extended = masks[mask_index]
        register_mask = mask if mask_extended else mask << EID_BITS
        kind_mask = register_mask if extended else register_mask >> EID_BITS
        result.append(MaskFilter(frame_id & kind_mask, kind_mask, extended))
    return result


# --- reporting ----------------------------------------------------------------


def _union_size(filters: list[MaskFilter], width: int) -> int:
    """|union of the filters' accepted sets|, by inclusion-exclusion over intersections."""
    full = (1 << width) - 1

    def intersect(a: tuple[int, int], f: MaskFilter) -> tuple[int, int] | None:
        value, mask = a
        common = mask & f.mask
        if (value ^ f.id) & common:
            return None
        return ((value & mask) | (f.id & f.mask), mask | f.mask)

    total = 0

    def walk(start: int, current: tuple[int, int], depth: int) -> None:
        nonlocal total
        for i in range(start, len(filters)):
            nxt = intersect(current, filters[i])
            if nxt is None:
                continue
            size = 1 << (width - bin(nxt[1] & full).count("1"))
            total += size if depth % 2 == 0 else -size
            walk(i + 1, nxt, depth + 1)

    walk(0, (0, 0), 0)
    return total


def false_accepts(filters: list[MaskFilter] | None, standard_ids: set[int], extended_ids: set[int]) -> FalseAccepts:
    """Unneeded ids passing ``filters`` over the whole 11-bit and 29-bit spaces.

    ``None`` (receive nothing) passes nothing.
    """
    filters = filters or []
    standard = [f for f in filters if not f.extended]
    extended = [f for f in filters if f.extended]
    standard_false = _union_size(standard, STANDARD_BITS) - len(standard_ids)
    extended_false = _union_size(extended, EXTENDED_BITS) - len(extended_ids)
    return FalseAccepts(
        standard=standard_false,
        standard_ratio=standard_false / ((1 << STANDARD_BITS) - len(standard_ids)),
        extended=extended_false,
        extended_ratio=extended_false / ((1 << EXTENDED_BITS) - len(extended_ids)),
    )
