"""The in-simulator player.

A Verilog test harness that plays a stimulus file into a design and records every output port,
with no Python in the simulation loop.

:func:`tb.runner.run_stream` used to drive every input and read every output from Python in
every clock cycle (:mod:`tb.player`, still there for interactive use).  Here Python writes the
whole stimulus to a file before the run and reads the whole record after it; in between the
simulator runs alone.  :func:`wrapper_verilog` generates a top module ``ftaccel_player`` that

* instantiates the design and makes its clock in HDL (period 10 ns, high at time 0, as
  cocotb's ``Clock`` did), holds ``rst`` high for ``reset_cycles`` rising edges and releases
  it at a falling edge;
* then, at each falling edge ``t = 0, 1, …``: first samples every output port into row ``t``
  of the record (``$fwrite`` with ``%u``: raw little-endian 32-bit words), then applies row
  ``t`` of the stimulus (``$fread``), which the next rising edge samples: the same timing as
  :mod:`tb.player`, so both players give identical records;
* resolves *loopbacks* itself: an input port (``psum_in``) takes, in the cycles the stimulus
  says so, the value an output port (``acc_out``) showed ``d`` cycles earlier, kept in a
  history memory of ``depth`` rows;
* refuses a stimulus made for another design: the file starts with the design's 64-bit key.

Stimulus file (all big-endian): a 24-byte header ``"FTPLAY01"``, key (8 bytes), cycles and
reset cycles (4 bytes each); then per cycle a change mask (one bit per input *group*, group 0
in the least significant bit, ``ceil(G/8)`` bytes) followed by the new value of each changed
group in group order (``ceil(width/8)`` bytes each).  A group is a port as the caller names it
(``in_data`` = the Verilog ports ``in_data__0 … in_data__{n-1}``, lane 0 in the least
significant bits); after the design's input groups come one 32-bit group per loopback,
holding ``t - src[t] + 1`` (0: no loopback).  Only changed groups are written, so a cycle
costs a few bytes and the simulator little I/O.

Record file: per cycle the concatenation of every output port of the design (declaration
order, lane 0 lowest), padded to a multiple of 32 bits.  Under Icarus a lane with an X or Z
bit reads 0 (registers before reset reaches them), as in :mod:`tb.player`.

``+raw`` (benchmark ceiling): the dense stimulus is loaded into a memory before the first
clock (``raw_depth`` rows, a build option), played with no file I/O and the outputs folded
into one XOR word printed at the end; ``+standalone`` ends the simulation with ``$finish``
(no cocotb).
"""

from __future__ import annotations

import hashlib
import json
import os
import re
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

__all__ = ["PLAYER_TOP", "Lane", "Group", "Loopback", "PlayerSpec", "read_ports",
           "build_spec", "wrapper_verilog", "encode_stimulus", "encode_raw", "decode_record",
           "record_fold", "loopback_depth", "StimulusError"]

PLAYER_TOP = "ftaccel_player"
MAGIC = b"FTPLAY01"
HALF_PERIOD_NS = 5
_CHUNK = 65536  # record rows decoded at a time: bounds the padded copy


class StimulusError(ValueError):
    """A stimulus that does not fit the design (unknown port, wrong shape, value too wide)."""


@dataclass(frozen=True)
class Lane:
    """One Verilog port of the design."""

    name: str
    width: int


@dataclass(frozen=True)
class Group:
    """A port as the caller names it: one Verilog port, or the lanes ``name__0 …``."""

    name: str
    lanes: tuple[Lane, ...]
    array: bool

    @property
    def width(self) -> int:
        """The group's width in bits, all lanes together."""
        return sum(lane.width for lane in self.lanes)

    @property
    def nbytes(self) -> int:
        """The bytes one value of the group takes in the stimulus file."""
        return (self.width + 7) // 8


@dataclass(frozen=True)
class Loopback:
    """Input group ``port`` takes what output group ``source`` showed earlier."""

    port: str
    source: str
    signed: bool


@dataclass(frozen=True)
class PlayerSpec:
    """Everything the wrapper depends on; :attr:`key` names it (and the design)."""

    toplevel: str
    inputs: tuple[Group, ...]
    outputs: tuple[Group, ...]
    loopbacks: tuple[Loopback, ...] = ()
    depth: int = 1 << 14
    raw_depth: int = 0
    sources_hash: str = ""
    key: str = field(default="", compare=False)

    def group(self, name: str, *, output: bool) -> Group:
        """The input (or, with ``output``, output) group called ``name``.

        Raises
        ------
        StimulusError
            When the design has no such port; the message lists the ports it has.
        """
        for g in self.outputs if output else self.inputs:
            if g.name == name:
                return g
        kind = "output" if output else "input"
        names = ", ".join(g.name for g in (self.outputs if output else self.inputs))
        raise StimulusError(f"{self.toplevel} has no {kind} port {name!r} (it has: {names})")

    @property
    def mask_bytes(self) -> int:
        """The bytes of a cycle's change mask: one bit per input group and per loopback."""
        return (len(self.inputs) + len(self.loopbacks) + 7) // 8

    @property
    def out_bits(self) -> int:
        """The width of all output ports together, in bits."""
        return sum(g.width for g in self.outputs)

    @property
    def out_bytes(self) -> int:
        """The bytes of one record row: :attr:`out_bits` padded to 32-bit words."""
        return 4 * ((self.out_bits + 31) // 32)

    @property
    def in_bits(self) -> int:
        """The bits of one dense stimulus row: every input group in whole bytes, 32 per loopback."""
        return sum(8 * g.nbytes for g in self.inputs) + 32 * len(self.loopbacks)

    def describe(self) -> dict:
        """The spec as plain JSON data (part of the model's cache key and ``model.json``)."""
        return {"toplevel": self.toplevel, "sources": self.sources_hash,
                "inputs": [[g.name, [[ln.name, ln.width] for ln in g.lanes]]
                           for g in self.inputs],
                "outputs": [[g.name, [[ln.name, ln.width] for ln in g.lanes]]
                            for g in self.outputs],
                "loopbacks": [[lb.port, lb.source, lb.signed] for lb in self.loopbacks],
                "depth": self.depth, "raw_depth": self.raw_depth}


# -- the design's ports -----------------------------------------------------------------------
_PORT = re.compile(r"^\s*(input|output|inout)\s+(?:wire\s+|reg\s+)?(signed\s+)?"
                   r"(?:\[\s*(\d+)\s*:\s*(\d+)\s*\]\s*)?([A-Za-z_][A-Za-z0-9_$]*)\s*;", re.M)


_FILES: dict[tuple, tuple[str, str]] = {}


def _file(path: Path) -> tuple[str, str]:
    """``(text, sha256)`` of a source file, read once per version of the file.

    A large array's Verilog is megabytes and every run of it needs its ports and hash.
    """
    st = os.stat(path)
    key = (str(Path(path).resolve()), st.st_mtime_ns, st.st_size)
    if key not in _FILES:
        data = Path(path).read_bytes()
        if len(_FILES) > 64:
            _FILES.clear()
        _FILES[key] = (data.decode(errors="replace"), hashlib.sha256(data).hexdigest())
    return _FILES[key]


def read_ports(verilog: list[Path], toplevel: str) -> list[tuple[str, str, int]]:
    """``(direction, name, width)`` of every port of module ``toplevel``, in declaration order.

    Parameters
    ----------
    verilog : list of Path
        The sources; the first one that defines ``toplevel`` is read.
    toplevel : str
        The module, in the ANSI-less style Yosys writes (``input [7:0] a__0;``).

    Raises
    ------
    StimulusError
        When no source defines the module, it declares no ports, or it has ``inout`` ports.
    """
    head = re.compile(r"^\s*module\s+\\?" + re.escape(toplevel) + r"\s*[(;#]", re.M)
    for path in verilog:
        text = _file(Path(path))[0]
        m = head.search(text)
        if m is None:
            continue
        end = text.find("endmodule", m.end())
        body = text[m.end():end if end >= 0 else len(text)]
        ports = []
        for d, _signed, msb, lsb, name in _PORT.findall(body):
            width = abs(int(msb) - int(lsb)) + 1 if msb else 1
            ports.append((d, name, width))
        if not ports:
            raise StimulusError(f"module {toplevel} in {path} has no port declarations")
        if any(d == "inout" for d, _, _ in ports):
            raise StimulusError(f"module {toplevel} has inout ports; the player cannot drive them")
        return ports
    raise StimulusError(f"no module {toplevel!r} in {', '.join(str(v) for v in verilog)}")


def _groups(ports: list[tuple[str, int]]) -> tuple[Group, ...]:
    """Group ``name__0 … name__{n-1}`` lanes (Amaranth's array ports) under ``name``."""
    lanes: dict[str, dict[int, Lane]] = {}
    order: list[tuple[str, bool]] = []
    for name, width in ports:
        m = re.fullmatch(r"(.+)__(\d+)", name)
        base = m.group(1) if m else name
        if m:
            if base not in lanes:
                lanes[base] = {}
                order.append((base, True))
            lanes[base][int(m.group(2))] = Lane(name, width)
        else:
            order.append((name, False))
            lanes[name] = {0: Lane(name, width)}
    groups = []
    for base, array in order:
        ls = lanes[base]
        if array and sorted(ls) != list(range(len(ls))):
            # not a dense 0..n-1 array: play each lane as its own group
            groups.extend(Group(ln.name, (ln,), False) for ln in ls.values())
        else:
            groups.append(Group(base, tuple(ls[i] for i in sorted(ls)), array))
    return tuple(groups)


def sources_hash(verilog: list[Path]) -> str:
    """One hash of the sources' contents, in order."""
    return hashlib.sha256("".join(_file(Path(p))[1] for p in verilog).encode()).hexdigest()


def build_spec(verilog: list[Path], toplevel: str, *, loopback: dict[str, tuple[str, bool]]
               | None = None, depth: int = 1 << 14, raw_depth: int = 0) -> PlayerSpec:
    """The player for ``toplevel``.

    It plays every input and records every output port (``clk`` and ``rst`` excepted, which
    the wrapper drives).

    Parameters
    ----------
    verilog : list of Path
        The design's Verilog sources (hashed into the spec's key).
    toplevel : str
        The design's module; it must have ``clk`` and ``rst`` ports.
    loopback : dict, optional
        ``port -> (source, signed)``: input group ``port`` may take what output group
        ``source`` showed earlier.
    depth : int
        Rows of loopback history (a power of two).
    raw_depth : int
        Rows of the ``+raw`` stimulus memory (0: no raw mode).
    """
    if depth < 1 or depth & (depth - 1):
        raise ValueError(f"loopback depth must be a power of two, not {depth!r}")
    ports = read_ports(verilog, toplevel)
    names = {n for _, n, _ in ports}
    for needed in ("clk", "rst"):
        if needed not in names:
            raise StimulusError(f"module {toplevel} has no {needed!r} port")
    ins = _groups([(n, w) for d, n, w in ports if d == "input" and n not in ("clk", "rst")])
    outs = _groups([(n, w) for d, n, w in ports if d == "output"])
    spec = PlayerSpec(toplevel=toplevel, inputs=ins, outputs=outs, depth=depth,
                      raw_depth=raw_depth, sources_hash=sources_hash(verilog))
    lbs = []
    for port, (source, signed) in sorted((loopback or {}).items()):
        gi, go = spec.group(port, output=False), spec.group(source, output=True)
        if len(gi.lanes) != len(go.lanes):
            raise StimulusError(f"loopback {port} <- {source}: {len(gi.lanes)} lanes against "
                                f"{len(go.lanes)}")
        lbs.append(Loopback(port, source, bool(signed)))
    spec = PlayerSpec(**{**spec.__dict__, "loopbacks": tuple(lbs)})
    key = hashlib.sha256(json.dumps(spec.describe(), sort_keys=True).encode()).hexdigest()[:16]
    return PlayerSpec(**{**spec.__dict__, "key": key})


# -- the wrapper --------------------------------------------------------------------------------
def _lane_slices(group: Group, base: int = 0):
    off = base
    for lane in group.lanes:
        yield lane, off
        off += lane.width


def wrapper_verilog(spec: PlayerSpec) -> str:
    """Verilog of the player top ``ftaccel_player`` for ``spec`` (deterministic).

    The player's own signals are named ``ftp_*`` (the design's port names are free), the
    design instance is ``dut``, and its output ports appear under their own names.
    """
    text = _wrapper_text(spec)
    # Design names were written between markers; every other identifier of the template
    # that could collide with a port name gets the ftp_ prefix (not inside strings).
    segments = text.split('"')
    for i in range(0, len(segments), 2):
        segments[i] = _INTERNAL.sub(r"ftp_\1", segments[i])
    text = '"'.join(segments)
    return re.sub(r"@@([^@]+)@@", r"\1", text)


_INTERNAL = re.compile(
    r"(?<![\w.$@'])((?:g|r|hist|lbv|lbd|rl|loop)\d+|done|status|out_row|mask|raw_mem|raw_row|"
    r"fold|header|stim_name|rec_name|fi|fo|t|n|cycles|reset_cycles|raw|standalone|bad|extra|"
    r"KEY|DEPTH|RAW_DEPTH|v)(?![\w$@])")


def _wrapper_text(spec: PlayerSpec) -> str:
    L: list[str] = []
    a = L.append
    in_index = {g.name: i for i, g in enumerate(spec.inputs)}
    out_index = {g.name: i for i, g in enumerate(spec.outputs)}
    out_off, off = {}, 0
    for g in spec.outputs:
        out_off[g.name] = off
        off += g.width
    ow = 32 * ((spec.out_bits + 31) // 32)
    mb = spec.mask_bytes
    row_bits = spec.in_bits
    a(f"// ftaccel in-simulator player for @@{spec.toplevel}@@; key {spec.key}")
    a("// Generated by ftaccel.tb.hdl_player: plays a stimulus file, records every output.")
    a("`timescale 1ns/1ps")
    a(f"module {PLAYER_TOP};")
    a(f"  localparam [63:0] KEY = 64'h{spec.key};")
    a(f"  localparam integer DEPTH = {spec.depth};")
    a(f"  localparam integer RAW_DEPTH = {max(spec.raw_depth, 1)};")
    # No declaration initialisers: Icarus applies those without an event, and combinational
    # blocks of the design that read a never-changing input would then stay X.  The first
    # statements of the initial block below set every driven signal at time 0 instead (as
    # cocotb's writes did).
    a("  reg clk, rst;")
    a("  reg done /*verilator public_flat_rd*/;")
    a("  reg [7:0] status /*verilator public_flat_rd*/;  // 1: played, 2: refused")
    a(f"  always #{HALF_PERIOD_NS} clk = ~clk;")
    # Each input group has the register the design sees (g), written with a non-blocking
    # assignment at the falling edge, and the value just read from the file (r).
    for k, g in enumerate(spec.inputs):
        a(f"  reg [{8 * g.nbytes - 1}:0] g{k}, r{k};  // @@{g.name}@@")
    drive: dict[str, str] = {}
    for k, g in enumerate(spec.inputs):
        for lane, lo in _lane_slices(g):
            drive[f"@@{lane.name}@@"] = f"g{k}[{lo + lane.width - 1}:{lo}]"
    for j, lb in enumerate(spec.loopbacks):
        gi = spec.inputs[in_index[lb.port]]
        go = spec.outputs[out_index[lb.source]]
        a(f"  reg [{go.width - 1}:0] hist{j} [0:DEPTH-1];  // @@{lb.source}@@ of earlier cycles")
        a(f"  reg [{gi.width - 1}:0] lbv{j};  // what @@{lb.port}@@ sees")
        a(f"  reg [31:0] lbd{j}, rl{j};  // loopback distance + 1 (0: off)")
        for lane, lo in _lane_slices(gi):
            drive[f"@@{lane.name}@@"] = f"lbv{j}[{lo + lane.width - 1}:{lo}]"
    for g in spec.outputs:
        for lane in g.lanes:
            a(f"  wire [{lane.width - 1}:0] @@{lane.name}@@;")
    conns = ["    .clk(clk)", "    .rst(rst)"]
    conns += [f"    .{name}({expr})" for name, expr in drive.items()]
    conns += [f"    .@@{lane.name}@@(@@{lane.name}@@)" for g in spec.outputs for lane in g.lanes]
    a(f"  @@{spec.toplevel}@@ dut (")
    a(",\n".join(conns))
    a("  );")
    # The record row, lane 0 of the first output group in the least significant bits.  Under
    # Icarus a lane holding X or Z reads 0, as tb.player reads an unresolvable value.
    parts = [f"@@{lane.name}@@" for g in spec.outputs for lane in g.lanes]
    clean = [f"((^@@{lane.name}@@) === 1'bx ? {lane.width}'d0 : @@{lane.name}@@)"
             for g in spec.outputs for lane in g.lanes]
    pad = [f"{ow - spec.out_bits}'d0"] if ow > spec.out_bits else []
    a(f"  wire [{ow - 1}:0] out_row;")
    a("`ifdef VERILATOR")
    a(f"  assign out_row = {{{', '.join(pad + parts[::-1])}}};")
    a("`else")
    a(f"  assign out_row = {{{', '.join(pad + clean[::-1])}}};")
    a("`endif")
    a(f"  reg [{8 * mb - 1}:0] mask;")
    a(f"  reg [{row_bits - 1}:0] raw_mem [0:RAW_DEPTH-1];")
    a(f"  reg [{row_bits - 1}:0] raw_row;")
    a(f"  reg [{ow - 1}:0] fold;")
    a("  reg [191:0] header;")
    a("  reg [8*4096-1:0] stim_name, rec_name;")
    a("  integer fi, fo, t, n, cycles, reset_cycles, raw, standalone, bad, extra;")
    for j, lb in enumerate(spec.loopbacks):
        gi = spec.inputs[in_index[lb.port]]
        go = spec.outputs[out_index[lb.source]]
        a(f"  function [{gi.width - 1}:0] loop{j};  // @@{lb.source}@@ -> @@{lb.port}@@")
        a(f"    input [{go.width - 1}:0] v;")
        cat = []
        for (lane, _), (olane, lo) in zip(_lane_slices(gi), _lane_slices(go), strict=True):
            src = f"v[{lo + min(lane.width, olane.width) - 1}:{lo}]"
            if lane.width > olane.width:
                ext = lane.width - olane.width
                fill = (f"{{{ext}{{v[{lo + olane.width - 1}]}}}}" if lb.signed
                        else f"{ext}'d0")
                src = f"{{{fill}, {src}}}"
            cat.append(src)
        a(f"    loop{j} = {{{', '.join(cat[::-1])}}};")
        a("  endfunction")

    def refuse(msg: str, indent: str, *args: str) -> None:
        extra = "".join(", " + x for x in args)
        a(f'{indent}begin $display("FTPLAYER ERROR: {msg}"{extra}); bad = 1; end')

    a("  initial begin")
    a("    clk = 1'b1; rst = 1'b1; done = 1'b0; status = 8'd0; fold = 0;")
    for k in range(len(spec.inputs)):
        a(f"    g{k} = 0; r{k} = 0;")
    for j in range(len(spec.loopbacks)):
        a(f"    lbv{j} = 0; lbd{j} = 0; rl{j} = 0;")
    a("    bad = 0; fi = 0; fo = 0; extra = 0; cycles = 0; reset_cycles = 0;")
    a('    raw = $test$plusargs("raw");')
    a('    standalone = $test$plusargs("standalone");')
    a('    if (!$value$plusargs("stimulus=%s", stim_name))')
    refuse("no +stimulus=FILE given", "      ")
    a("    if (!bad) begin")
    a('      fi = $fopen(stim_name, "rb");')
    a("      if (fi == 0)")
    refuse("cannot open the stimulus file", "        ")
    a("    end")
    a("    if (!bad) begin")
    a("      n = $fread(header, fi);")
    a(f"      if (n != 24 || header[191:128] != 64'h{MAGIC.hex()})")
    refuse("not a player stimulus file (bad header)", "        ")
    a("      else if (header[127:64] != KEY)")
    refuse(f"stimulus for a different design: its key is %h, this player (@@{spec.toplevel}@@) "
           "is %h", "        ", "header[127:64]", "KEY")
    a("    end")
    a("    if (!bad) begin")
    a("      cycles = header[63:32];")
    a("      reset_cycles = header[31:0];")
    a("      if (raw) begin")
    a("        if (cycles > RAW_DEPTH)")
    refuse("raw run of %0d cycles, this build holds %0d", "          ", "cycles",
           "RAW_DEPTH")
    a("        else begin")
    a("          n = $fread(raw_mem, fi, 0, cycles);")
    a(f"          if (n != cycles * {row_bits // 8})")
    refuse("raw stimulus truncated", "            ")
    a("        end")
    a("      end else begin")
    a('        if (!$value$plusargs("record=%s", rec_name))')
    refuse("no +record=FILE given", "          ")
    a("        else begin")
    a('          fo = $fopen(rec_name, "wb");')
    a("          if (fo == 0)")
    refuse("cannot create the record file", "            ")
    a("        end")
    a("      end")
    a("    end")
    a("    if (!bad) begin")
    a("      repeat (reset_cycles) @(posedge clk);")
    a("      @(negedge clk);")
    a("      rst <= 1'b0;")
    a("      for (t = 0; t < cycles && !bad; t = t + 1) begin")
    a("        // outputs of cycle t first, then the inputs the next rising edge samples")
    a("        if (raw) fold = fold ^ out_row;")
    a('        else $fwrite(fo, "%u", out_row);')
    for j, lb in enumerate(spec.loopbacks):
        go = spec.outputs[out_index[lb.source]]
        lo = out_off[lb.source]
        a(f"        hist{j}[t % DEPTH] = out_row[{lo + go.width - 1}:{lo}];")
    a("        if (raw) begin")
    a("          raw_row = raw_mem[t];")
    pos = row_bits
    for k, g in enumerate(spec.inputs):
        a(f"          r{k} = raw_row[{pos - 1}:{pos - 8 * g.nbytes}];")
        pos -= 8 * g.nbytes
    for j in range(len(spec.loopbacks)):
        a(f"          rl{j} = raw_row[{pos - 1}:{pos - 32}];")
        pos -= 32
    a(f"          mask = {{{8 * mb}{{1'b1}}}};")
    a("        end else begin")
    a("          n = $fread(mask, fi);")
    a(f"          if (n != {mb}) bad = 1;")
    a("        end")
    for k, g in enumerate(spec.inputs):
        a(f"        if (mask[{k}]) begin")
        a(f"          if (!raw) begin n = $fread(r{k}, fi); if (n != {g.nbytes}) bad = 1; end")
        a(f"          g{k} <= r{k};")
        a("        end")
    for j, lb in enumerate(spec.loopbacks):
        k = in_index[lb.port]
        width = spec.inputs[k].width
        a(f"        if (mask[{len(spec.inputs) + j}]) begin")
        a(f"          if (!raw) begin n = $fread(rl{j}, fi); if (n != 4) bad = 1; end")
        a(f"          lbd{j} = rl{j};")
        a("        end")
        a(f"        if (lbd{j} == 0)")
        a(f"          lbv{j} <= mask[{k}] ? r{k}[{width - 1}:0] : g{k}[{width - 1}:0];")
        a(f"        else if (lbd{j} > DEPTH || lbd{j} > t + 1)")
        a("          bad = 1;")
        a("        else")
        a(f"          lbv{j} <= loop{j}(hist{j}[(t + 1 - lbd{j}) % DEPTH]);")
    a("        if (bad)")
    a('          $display("FTPLAYER ERROR: stimulus truncated or malformed in cycle %0d", t);')
    a("        else")
    a("          @(negedge clk);")
    a("      end")
    a("      if (!bad && !raw) begin")
    a("        extra = $fgetc(fi);")
    a("        if (extra != -1)")
    refuse("stimulus longer than its %0d cycles", "          ", "cycles")
    a("      end")
    a("      if (raw)")
    a('        $display("FTPLAYER RAW fold=%h cycles=%0d", fold, cycles);')
    a("    end")
    a("    if (fo != 0) $fclose(fo);")
    a("    if (fi != 0) $fclose(fi);")
    a("    status = bad ? 8'd2 : 8'd1;")
    a("    done = 1'b1;")
    a("    if (standalone) $finish;")
    a("  end")
    a("endmodule")
    return "\n".join(L) + "\n"


# -- stimulus and record files ------------------------------------------------------------------
def _group_values(g: Group, arr, cycles: int) -> np.ndarray:
    """The caller's ``[T]`` / ``[T, n]`` values of group ``g`` as ``[T, lanes]`` int64.

    Each value is checked to fit its lane (as a signed or an unsigned number).
    """
    a = np.asarray(arr)
    if a.dtype.kind not in "iub":
        if a.dtype.kind == "f" and np.all(np.isfinite(a)) and np.all(a == np.round(a)):
            a = a.astype(np.int64)
        else:
            raise StimulusError(f"input {g.name!r}: values must be integers, not {a.dtype}")
    a = np.asarray(a, dtype=np.int64)  # no copy when it already is
    if a.ndim == 1:
        if g.array:
            raise StimulusError(f"input {g.name!r} has {len(g.lanes)} lanes; give [T, "
                                f"{len(g.lanes)}] values, not [T]")
        a = a[:, None]
    elif a.ndim != 2 or a.shape[1] != len(g.lanes) or not g.array:
        want = f"[T, {len(g.lanes)}]" if g.array else "[T]"
        raise StimulusError(f"input {g.name!r}: values of shape {a.shape}, the port needs {want}")
    if len(a) != cycles:
        raise StimulusError(f"input {g.name!r}: {len(a)} cycles, the others have {cycles}")
    if not len(a):
        return a
    lo = np.array([-(1 << min(ln.width - 1, 62)) for ln in g.lanes], dtype=np.int64)
    hi = np.array([(1 << min(ln.width, 62)) - 1 for ln in g.lanes], dtype=np.int64)
    # whole-array extremes first (fast); the lane-wise search only when something is off
    if (a.min() < lo.max() or a.max() > hi.min()) and np.any((a < lo) | (a > hi)):
        t, i = np.argwhere((a < lo) | (a > hi))[0]
        lane = g.lanes[i]
        raise StimulusError(f"input {lane.name}: value {int(a[t, i])} in cycle {t} does "
                            f"not fit its {lane.width} bits")
    return a


def _pack(lanes: list[tuple[np.ndarray, int]], cycles: int) -> np.ndarray:
    """Concatenate ``(values [T] int64, width)`` lanes into ``[T, ceil(bits/8)]`` bytes.

    Lane 0 goes in the least significant bits; the bytes are big-endian two's complement,
    sign-extended past 64 bits.  Word arithmetic on ``uint64``, vectorised over the cycles.
    """
    total = sum(w for _, w in lanes)
    words = np.zeros((cycles, (total + 63) // 64 + 1), dtype="<u8")
    off = 0
    for values, width in lanes:
        v = values.astype(np.int64)
        chunks = [(v.astype(np.uint64), min(width, 64))]
        if width > 64:  # the sign, 64 bits at a time
            sign = np.where(v < 0, np.uint64(2**64 - 1), np.uint64(0))
            chunks += [(sign, min(64, width - k)) for k in range(64, width, 64)]
        for chunk, w in chunks:
            if w < 64:
                chunk = chunk & np.uint64((1 << w) - 1)
            q, sh = divmod(off, 64)
            words[:, q] |= chunk << np.uint64(sh)
            if sh and sh + w > 64:
                words[:, q + 1] |= chunk >> np.uint64(64 - sh)
            off += w
    nbytes = (total + 7) // 8
    return words.view(np.uint8).reshape(cycles, words.shape[1] * 8)[:, :nbytes][:, ::-1]


def _unpack(words: np.ndarray, off: int, width: int, signed: bool) -> np.ndarray:
    """Field ``[off, off + width)`` (width <= 64) of little-endian ``uint64`` rows, as int64."""
    q, sh = divmod(off, 64)
    v = words[:, q] >> np.uint64(sh)
    if sh and sh + width > 64:
        v = v | (words[:, q + 1] << np.uint64(64 - sh))
    if width < 64:
        v = v & np.uint64((1 << width) - 1)
        if signed:
            sign = np.uint64(1 << (width - 1))
            return (v ^ sign).astype(np.int64) - np.int64(1 << (width - 1))
    return v.astype(np.int64)


def _group_bytes(widths: list[int], vals: np.ndarray) -> np.ndarray:
    """``[T, lanes]`` -> ``[T, nbytes]`` big-endian bytes of the lane concatenation."""
    w = widths[0]
    if all(x == w for x in widths) and w % 8 == 0 and w <= 64:
        # whole-byte lanes (8-bit data): the low bytes of each int64, no bit arithmetic
        le = vals.astype("<i8").view(np.uint8).reshape(len(vals), len(widths), 8)
        return le[:, :, :w // 8].reshape(len(vals), len(widths) * w // 8)[:, ::-1]
    return _pack([(vals[:, i], width) for i, width in enumerate(widths)], len(vals))


def loopback_depth(loopback: dict[str, tuple[str, np.ndarray]] | None, minimum: int = 1 << 14
                   ) -> int:
    """The history depth (a power of two, at least ``minimum``) the loopbacks need."""
    need = 1
    for _port, (_source, src) in (loopback or {}).items():
        src = np.asarray(src, dtype=np.int64)
        t = np.arange(len(src))
        on = src >= 0
        if on.any():
            need = max(need, int((t[on] - src[on]).max()) + 1)
    depth = minimum
    while depth < need:
        depth *= 2
    return depth


def _values(spec: PlayerSpec, inputs: dict[str, np.ndarray],
            loopback: dict[str, tuple[str, np.ndarray]] | None, cycles: int):
    """Per group (inputs, then loopbacks), validated: ``(values, lane widths)``.

    ``values`` is ``[T, lanes]`` int64, or None for a group the caller never drives.
    """
    given = dict(inputs)
    cols = []
    for g in spec.inputs:
        vals = _group_values(g, given.pop(g.name), cycles) if g.name in given else None
        cols.append((vals, [lane.width for lane in g.lanes]))
    if given:
        spec.group(next(iter(given)), output=False)  # raises, naming the ports
    lb = dict(loopback or {})
    for j in spec.loopbacks:
        if j.port not in lb:
            lb[j.port] = (j.source, np.full(cycles, -1))
    for port, (source, _src) in lb.items():
        if not any(x.port == port and x.source == source for x in spec.loopbacks):
            raise StimulusError(f"loopback {port} <- {source} is not built into this player")
    for j in spec.loopbacks:
        src = np.asarray(lb[j.port][1], dtype=np.int64)
        if len(src) != cycles:
            raise StimulusError(f"loopback {j.port}: {len(src)} cycles, the inputs have "
                                f"{cycles}")
        t = np.arange(cycles, dtype=np.int64)
        on = src >= 0
        if np.any(src[on] > t[on]):
            c = int(t[on][np.argmax(src[on] > t[on])])
            raise StimulusError(f"loopback {j.port}: cycle {c} takes a value from the future")
        dist = np.where(on, t - src + 1, 0)
        if dist.max(initial=0) > spec.depth:
            raise StimulusError(f"loopback {j.port}: reaches {int(dist.max()) - 1} cycles back,"
                                f" this player keeps {spec.depth}")
        cols.append((dist[:, None], [32]))
    return cols


def _header(spec: PlayerSpec, cycles: int, reset_cycles: int) -> bytes:
    if not 0 <= cycles < 1 << 32 or not 0 <= reset_cycles < 1 << 32:
        raise StimulusError(f"cycles {cycles} / reset cycles {reset_cycles} out of range")
    return (MAGIC + bytes.fromhex(spec.key) + cycles.to_bytes(4, "big")
            + reset_cycles.to_bytes(4, "big"))


def _cycles(inputs: dict[str, np.ndarray]) -> int:
    lengths = {len(np.asarray(v)) for v in inputs.values()}
    if len(lengths) > 1:
        raise StimulusError(f"stimulus ports have different lengths: {sorted(lengths)}")
    return lengths.pop() if lengths else 0


def encode_stimulus(spec: PlayerSpec, inputs: dict[str, np.ndarray],
                    loopback: dict[str, tuple[str, np.ndarray]] | None = None, *,
                    reset_cycles: int = 2) -> bytes:
    """The change-encoded stimulus file for ``spec`` (see the module docstring).

    Only the rows in which a group changes are packed, and they are scattered straight to
    their place in the file: the cost follows the changes, not cycles × ports.
    """
    cycles = _cycles(inputs)
    cols = _values(spec, inputs, loopback, cycles)
    mb = spec.mask_bytes
    mask_bits = np.zeros((cycles, 8 * mb), dtype=np.uint8)
    changes = []
    for k, (vals, widths) in enumerate(cols):
        if vals is None or not cycles:
            continue
        changed = np.empty(cycles, dtype=bool)
        changed[0] = bool(np.any(vals[0] != 0))  # the player starts from 0
        changed[1:] = np.any(vals[1:] != vals[:-1], axis=1)
        rows = np.flatnonzero(changed)
        mask_bits[rows, k] = 1
        changes.append((k, rows, _group_bytes(widths, vals[rows])))
    # each cycle: the mask, then the changed groups in order
    size = np.full(cycles, mb, dtype=np.int64)
    for _k, rows, data in changes:
        size[rows] += data.shape[1]
    start = np.zeros(cycles + 1, dtype=np.int64)
    np.cumsum(size, out=start[1:])
    out = np.zeros(int(start[-1]), dtype=np.uint8)
    mask = np.packbits(mask_bits, axis=1, bitorder="little")[:, ::-1]  # big-endian
    out[start[:-1, None] + np.arange(mb)] = mask
    cursor = start[:-1] + mb
    for _k, rows, data in changes:
        out[cursor[rows, None] + np.arange(data.shape[1])] = data
        cursor[rows] += data.shape[1]
    return _header(spec, cycles, reset_cycles) + out.tobytes()


def encode_raw(spec: PlayerSpec, inputs: dict[str, np.ndarray],
               loopback: dict[str, tuple[str, np.ndarray]] | None = None, *,
               reset_cycles: int = 2) -> bytes:
    """The dense stimulus for a ``+raw`` run (every group every cycle, never-driven groups 0)."""
    cycles = _cycles(inputs)
    cols = _values(spec, inputs, loopback, cycles)
    full = [_group_bytes(widths, vals) if vals is not None
            else np.zeros((cycles, (sum(widths) + 7) // 8), dtype=np.uint8)
            for vals, widths in cols]
    return _header(spec, cycles, reset_cycles) + np.hstack(full).tobytes()


def decode_record(spec: PlayerSpec, data: bytes, cycles: int,
                  outputs: dict[str, tuple[int, bool]]) -> dict[str, np.ndarray]:
    """The recorded ``outputs`` (``port -> (n, signed)``) as int64 ``[T]`` / ``[T, n]``."""
    row = spec.out_bytes
    if len(data) != row * cycles:
        raise StimulusError(f"record holds {len(data)} bytes, expected {cycles} rows of {row}")
    raw = np.frombuffer(data, dtype=np.uint8).reshape(cycles, row)
    offs, off = {}, 0
    for g in spec.outputs:
        offs[g.name] = off
        off += g.width
    want = []
    for name, (n, signed) in outputs.items():
        g = spec.group(name, output=True)
        if (n == 0) == g.array or (n and n != len(g.lanes)):
            have = f"{len(g.lanes)} lanes" if g.array else "a scalar"
            raise StimulusError(f"output {name!r} is {have}, asked for n = {n}")
        if any(lane.width > 64 for lane in g.lanes):
            raise StimulusError(f"output {name!r} is wider than 64 bits")
        want.append((name, g, n, signed))
    result = {name: np.zeros((cycles, max(n, 1)), dtype=np.int64) for name, _, n, _ in want}
    pad = (-row) % 8 + 8  # whole uint64 words, plus one so a field may read the next word
    for start in range(0, cycles, _CHUNK):
        stop = min(cycles, start + _CHUNK)
        block = np.zeros((stop - start, row + pad), dtype=np.uint8)
        block[:, :row] = raw[start:stop]
        words = block.view("<u8")
        for name, g, _n, signed in want:
            for i, (lane, loff) in enumerate(_lane_slices(g, offs[name])):
                result[name][start:stop, i] = _unpack(words, loff, lane.width, signed)
    return {name: (result[name][:, 0] if n == 0 else result[name])
            for name, _, n, _ in want}


def record_fold(spec: PlayerSpec, data: bytes, cycles: int) -> int:
    """XOR of every record row, as the ``+raw`` run prints it (to check it did the same work)."""
    row = spec.out_bytes
    words = np.frombuffer(data, dtype="<u4").reshape(cycles, row // 4)
    folded = np.bitwise_xor.reduce(words, axis=0) if cycles else np.zeros(row // 4, "<u4")
    return sum(int(w) << (32 * i) for i, w in enumerate(folded))
