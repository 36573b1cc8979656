'use strict';
// An emulated Raspberry Pi Pico for keidrive: the npm package rp2040js
// (Wokwi's RP2040 emulator, used unmodified) running a UF2 image with the
// RP2040's own boot ROM. Started by keidrive.target.rp2040js, which holds the
// other side of two byte streams:
//
//   the console: MicroPython's REPL on the USB CDC device, on this process's
//     stdin and stdout (or, with --device, output in 'O' messages);
//   --device RFD,WFD: the devices wired to the chip, served by the host over
//     a pipe pair: the MCP2515 on SPI0 (--cs and --int: its chip select and
//     INT pins), and the host's clock requests. Every message carries the
//     emulated time and the cycles the core has executed.
//
// What rp2040js leaves out or does differently, worked around here:
//
// * Writing the QSPI flash is not emulated (its SSI peripheral answers but
//   programs nothing), so LittleFS writes would be lost: the boot ROM's
//   flash_range_erase and flash_range_program (found through the ROM's
//   function table) start with a BKPT in this process's copy of the ROM, and
//   the breakpoint does the erase or program on the emulated flash, lets the
//   time the Pico's W25Q16JV takes pass with the core stalled (MicroPython
//   runs them with interrupts off: frames arriving meanwhile wait in the
//   MCP2515, as on a board), then returns to the caller.
// * Its USB CDC host answers every OUT transfer the device arms with a
//   zero-length packet at once when it has nothing to send: MicroPython
//   re-arms at once, an interrupt storm that tripled the cycles a frame took.
//   Here an armed OUT transfer waits until there is input.
// * A core waiting for an event (WFE/WFI) with no timer pending stops
//   emulated time. Here the loop then waits for input; with --device the
//   host always asks to be called back at its next event (a frame due at the
//   MCP2515, the end of a drive), so time runs on to it.
// * Its UART keeps the TX interrupt asserted; the console here is USB CDC
//   only, as on a Pico with the stock image, so the UART is not used.
// * Its SPI clock assumes clk_peri is the 125 MHz system clock; MicroPython
//   runs clk_peri from the 48 MHz USB PLL (CLK_PERI_CTRL.AUXSRC = 2), so a
//   10 MHz request gets 8 MHz: the bit time here follows CLK_PERI_CTRL.

const fs = require('fs');
const { RP2040, USBCDC, ConsoleLogger, LogLevel, GPIOPinState } = require('rp2040js');
const { decodeBlock } = require('uf2');

const CYCLE_NANOS = 8; // 125 MHz, the clock rp2040js runs its core and peripherals at
const FLASH_BASE = 0x10000000;
const CLK_PERI_CTRL = 0x40008048;
// clk_peri's AUXSRC (RP2040 datasheet 2.15.7): clk_sys, pll_sys, pll_usb, rosc, xosc
const PERI_SOURCE_HZ = [125e6, 125e6, 48e6, 6.5e6, 12e6];
const RP2040_FAMILY = 0xe48bff56;
const SLICE_MS = 20; // wall time between looks at stdin while the core runs
// W25Q16JV typical times (datasheet, table 9.7): page program 0.4 ms (256
// bytes), 4 KiB sector erase 45 ms, 64 KiB block erase 150 ms
const PAGE_PROGRAM_NS = 400e3;
const SECTOR_ERASE_NS = 45e6;
const BLOCK_ERASE_NS = 150e6;

function parseArgs(argv) {
  const args = { flash: [], device: null, cs: 17, int: 20, flashOut: null };
  for (let i = 0; i < argv.length; i += 2) {
    const [key, value] = [argv[i], argv[i + 1]];
    if (key === '--bootrom') args.bootrom = value;
    else if (key === '--uf2') args.uf2 = value;
    else if (key === '--flash') args.flash.push(value); // PATH@OFFSET: bytes written into flash before boot
    else if (key === '--flash-out') args.flashOut = value; // PATH@OFFSET:LENGTH written at exit
    else if (key === '--device') args.device = value.split(',').map(Number);
    else if (key === '--cs') args.cs = Number(value);
    else if (key === '--int') args.int = Number(value);
    else throw new Error(`unknown argument ${key}`);
  }
  if (!args.bootrom || !args.uf2) throw new Error('--bootrom and --uf2 are required');
  return args;
}

function loadUF2(mcu, path) {
  const data = fs.readFileSync(path);
  if (data.length === 0 || data.length % 512) throw new Error(`${path}: not a UF2 file (${data.length} bytes)`);
  for (let offset = 0; offset < data.length; offset += 512) {
    const block = decodeBlock(data.subarray(offset, offset + 512));
    if (block.boardFamily !== RP2040_FAMILY) throw new Error(`${path}: a UF2 block for another chip family`);
    mcu.flash.set(block.payload, block.flashAddress - FLASH_BASE);
  }
}

function splitPlace(spec) {
  const at = spec.lastIndexOf('@');
  const [offset, length] = spec.slice(at + 1).split(':').map(Number);
  return { path: spec.slice(0, at), offset, length };
}

// The boot ROM's function table (RP2040 datasheet 2.8.3): a 16-bit pointer at
// 0x14 to pairs of (two-character code, 16-bit address), ending with a 0 code.
function romFunction(rom, code) {
  const half = (address) => rom[address] | (rom[address + 1] << 8);
  const wanted = code.charCodeAt(0) | (code.charCodeAt(1) << 8);
  for (let entry = half(0x14); half(entry); entry += 4) {
    if (half(entry) === wanted) return half(entry + 2) & ~1;
  }
  throw new Error(`the boot ROM has no function ${code}`);
}

function hookFlashWrites(mcu, romBytes) {
  const BKPT = 0xbe00;
  const hooks = new Map([[0x4b, 'RE'], [0x4c, 'RP']]); // BKPT #imm -> ROM function
  for (const [imm, code] of hooks) {
    const address = romFunction(romBytes, code);
    romBytes[address] = imm;
    romBytes[address + 1] = BKPT >> 8;
  }
  mcu.loadBootrom(new Uint32Array(romBytes.buffer, romBytes.byteOffset, romBytes.length / 4));
  mcu.onBreak = (imm) => {
    const core = mcu.core;
    const r = core.registers;
    let stall;
    if (imm === 0x4b) {
      // flash_range_erase(addr, count, block_size, block_cmd): whole 4 KiB
      // sectors, with block_size blocks where they fit
      const [addr, count, blockSize] = [r[0], r[1], r[2]];
      mcu.flash.fill(0xff, addr, addr + count);
      const blocks = blockSize === 65536 && addr % 65536 === 0 ? Math.floor(count / 65536) : 0;
      stall = blocks * BLOCK_ERASE_NS + ((count - blocks * 65536) / 4096) * SECTOR_ERASE_NS;
    } else if (imm === 0x4c) {
      // flash_range_program(addr, data, count): NOR programming only clears bits
      for (let k = 0; k < r[2]; k++) mcu.flash[r[0] + k] &= mcu.readUint8(r[1] + k);
      stall = Math.ceil(r[2] / 256) * PAGE_PROGRAM_NS;
    } else {
      throw new Error(`breakpoint ${imm} at ${(core.PC - 2).toString(16)}`);
    }
    core.PC = core.LR & ~1; // return to the caller
    mcu.clock.tick(stall);
  };
}

// The console: the USB CDC device, with OUT transfers held until there is input.
function attachConsole(mcu, write) {
  const usb = mcu.usbCtrl;
  const cdc = new USBCDC(usb);
  const input = [];
  let armed = 0; // bytes the device asked for on its OUT endpoint, 0: none pending
  const deliver = () => {
    const n = Math.min(armed, input.length);
    armed = 0;
    usb.endpointReadDone(cdc.outEndpoint, Uint8Array.from(input.splice(0, n)));
  };
  const cdcRead = usb.onEndpointRead;
  usb.onEndpointRead = (endpoint, size) => {
    if (endpoint !== cdc.outEndpoint) return cdcRead(endpoint, size);
    armed = size;
    if (input.length) deliver();
  };
  cdc.onSerialData = (buffer) => write(buffer);
  return {
    push(bytes) {
      for (const b of bytes) input.push(b);
      if (armed && input.length) deliver();
    },
  };
}

// The host side of --device: one message out, one reply back, in order.
class Device {
  constructor(mcu, rfd, wfd) {
    this.mcu = mcu;
    this.rfd = rfd;
    this.wfd = wfd;
    this.header = Buffer.alloc(24);
    this.reply = Buffer.alloc(16);
    this.payload = Buffer.alloc(4096);
    this.alarm = mcu.clock.createAlarm(() => this.exchange('T'));
    this.onIntLevel = null; // the MCP2515's INT pin follows the replies
    this.onConsole = null; // console input that came with a reply
    this.stopped = false;
  }

  send(type, bytes) {
    const h = this.header;
    h.writeUInt8(type.charCodeAt(0), 0);
    h.writeUInt8(0, 1);
    h.writeUInt16LE(bytes.length, 2);
    h.writeUInt32LE(this.mcu.core.PC >>> 0, 4); // where the core is, for diagnostics
    h.writeDoubleLE(this.mcu.clock.nanos, 8);
    h.writeDoubleLE(this.mcu.busyCycles, 16);
    fs.writeSync(this.wfd, Buffer.concat([h, Buffer.from(bytes)]));
  }

  read(buffer, length) {
    let got = 0;
    while (got < length) {
      const n = fs.readSync(this.rfd, buffer, got, length - got, null);
      if (n === 0) throw new Error('the host closed the device channel');
      got += n;
    }
  }

  // Reply: INT level (u8), flags (u8, 1: stop), response length (u16),
  // console length (u16), 2 bytes unused, next event (f64 nanos, negative:
  // none), then the SPI response and the console input.
  exchange(type, bytes = []) {
    if (this.stopped) return Buffer.alloc(0); // the host has said its last word
    this.send(type, bytes);
    const r = this.reply;
    this.read(r, 16);
    const responseLength = r.readUInt16LE(2);
    const consoleLength = r.readUInt16LE(4);
    const total = responseLength + consoleLength;
    if (total > this.payload.length) this.payload = Buffer.alloc(total);
    this.read(this.payload, total);
    const next = r.readDoubleLE(8);
    if (next >= 0) this.alarm.schedule(Math.max(0, next - this.mcu.clock.nanos));
    else this.alarm.cancel();
    if (r.readUInt8(1) & 1) this.stopped = true;
    if (this.onIntLevel) this.onIntLevel(!!r.readUInt8(0));
    if (consoleLength && this.onConsole) this.onConsole(Buffer.from(this.payload.subarray(responseLength, total)));
    return this.payload.subarray(0, responseLength);
  }
}

// The MCP2515 on SPI0. SO is high-impedance while the instruction byte is
// clocked in (read here as 0xff); from the second byte on the host answers
// with every byte the transaction will shift out, so one exchange serves a
// whole READ or READ RX BUFFER. Each byte completes after 8 bits of the SPI
// clock the firmware set. Chip select rising ends the transaction: the host
// applies it (a write, a flag cleared) and says where INT stands.
function attachMCP2515(mcu, device, csPin, intPin) {
  const spi = mcu.spi[0];
  let selected = false;
  let tx = [];
  let response = null;
  let pending = 0;
  const done = mcu.clock.createAlarm(() => spi.completeTransmit(pending));
  const spiHz = () => {
    const peri = PERI_SOURCE_HZ[(mcu.readUint32(CLK_PERI_CTRL) >> 5) & 7] || 125e6;
    const scr = (spi.control0 >> 8) & 0xff;
    return peri / ((spi.clockDivisor || 2) * (1 + scr));
  };
  spi.onTransmit = (value) => {
    let out = 0xff;
    if (selected) {
      tx.push(value);
      const k = tx.length - 1;
      if (k > 0 && (response === null || k - 1 >= response.length)) {
        response = Buffer.from(device.exchange('X', tx));
        response.base = k;
      }
      if (k > 0 && k - response.base < response.length) out = response[k - response.base];
    }
    pending = out;
    done.schedule(Math.round((8 * 1e9) / spiHz()));
  };
  mcu.gpio[csPin].addListener((state) => {
    const low = state === GPIOPinState.Low;
    if (low && !selected) {
      selected = true;
      tx = [];
      response = null;
    } else if (!low && selected) {
      selected = false;
      if (tx.length) device.exchange('E', tx);
    }
  });
  const int = mcu.gpio[intPin];
  let level = true;
  int.setInputValue(true); // INT is high (inactive) until the chip has a frame
  device.onIntLevel = (high) => {
    if (high !== level) {
      level = high; // only a change: rp2040js latches an edge on every setInputValue(false)
      int.setInputValue(high);
    }
  };
}

function main() {
  const args = parseArgs(process.argv.slice(2));
  const mcu = new RP2040();
  mcu.logger = new ConsoleLogger(LogLevel.Error, false);
  // The cycles the core executed, as the clock advanced for them: core.cycles
  // also adds 8 for each use of the SIO divider, whose wait the SDK's divide
  // routines spend in instructions that are counted already.
  mcu.busyCycles = 0;
  const rom = new Uint8Array(fs.readFileSync(args.bootrom));
  if (rom.length !== 16384) throw new Error(`${args.bootrom}: a boot ROM is 16384 bytes, not ${rom.length}`);
  hookFlashWrites(mcu, rom);
  loadUF2(mcu, args.uf2);
  for (const spec of args.flash) {
    const { path, offset } = splitPlace(spec);
    mcu.flash.set(fs.readFileSync(path), offset);
  }
  mcu.core.PC = FLASH_BASE; // boot2, as the boot ROM enters it

  let device = null;
  let write = (buffer) => process.stdout.write(Buffer.from(buffer));
  if (args.device) {
    device = new Device(mcu, args.device[0], args.device[1]);
    write = (buffer) => device.exchange('O', buffer);
  }
  const console_ = attachConsole(mcu, write);
  let wake = null;
  const consoleInput = (bytes) => {
    console_.push(bytes);
    if (wake) wake();
  };
  process.stdin.on('data', consoleInput);
  process.stdin.on('end', () => { if (!device) finish(0); });
  if (device) {
    device.onConsole = consoleInput;
    attachMCP2515(mcu, device, args.cs, args.int);
    device.exchange('T'); // the host's first event
  }

  function finish(code) {
    if (args.flashOut) {
      const { path, offset, length } = splitPlace(args.flashOut);
      fs.writeFileSync(path, mcu.flash.subarray(offset, offset + length));
    }
    process.exit(code);
  }

  const core = mcu.core;
  const clock = mcu.clock;
  // Runs the core for a slice of wall time; false when nothing can happen
  // until input arrives (the core waits and no timer is pending).
  function slice() {
    const end = Date.now() + SLICE_MS;
    for (;;) {
      for (let i = 0; i < 50000; i++) {
        if (core.waiting) {
          if (!clock.nextAlarm) return false;
          clock.tick(clock.nanosToNextAlarm);
        } else {
          const cycles = core.executeInstruction();
          mcu.busyCycles += cycles;
          clock.tick(cycles * CYCLE_NANOS);
        }
      }
      if ((device && device.stopped) || Date.now() > end) return true;
    }
  }

  (async () => {
    for (;;) {
      const busy = slice();
      if (device && device.stopped) finish(0);
      await new Promise((resolve) => {
        if (busy) setImmediate(resolve);
        else wake = () => { wake = null; resolve(); };
      });
    }
  })().catch((error) => {
    process.stderr.write(`rp2040 runner: ${error.stack || error}\n`);
    process.exit(3);
  });
}

try {
  main();
} catch (error) {
  process.stderr.write(`rp2040 runner: ${error.message}\n`);
  process.exit(2);
}
