# OpenSTA script of ftaccel (synth/sta.py): timing and power of one mapped netlist.
# sta.py fills the placeholders listed below; the sha256 of this file is recorded in every report.
#
# One module at a time (its submodule instances turned into ports), or the whole design linked (small
# designs).  The module's ports are treated as the registers of its neighbours, as they are in
# the systolic array (every PE output is a register): an input arrives a flip-flop's clk->Q
# after the clock edge (measured by the calibration run) with that cell's drive, an output
# must arrive the flip-flop's setup time before the next edge and drives its D pin.
#
# Placeholders (upper-case names between at-signs): LIBERTY cell library, WIRELIB the
# wire-load library line (or nothing), NETLIST, TOP, WIRELOAD the set_wire_load_model line,
# PERIOD clock period (ns), TCQ, SETUP, LOAD, DFF the boundary model, ACTIVITY the
# set_power_activity lines, POWER 1 to report power, REG2REG 1 to report the worst
# register-to-register path as well.

read_liberty @LIBERTY@
@WIRELIB@
read_verilog @NETLIST@
link_design @TOP@
@WIRELOAD@

# A module without a clock port (combinational) is timed against a virtual clock.
if {[llength [get_ports -quiet clk]]} {
  create_clock -name clk -period @PERIOD@ [get_ports clk]
} else {
  create_clock -name clk -period @PERIOD@
}
set data_in [delete_from_list [all_inputs] [get_ports -quiet clk]]
if {[llength $data_in]} {
  set_input_delay -clock clk @TCQ@ $data_in
  set_driving_cell -lib_cell @DFF@ -from_pin CLK -pin Q $data_in
}
if {[llength [all_outputs]]} {
  set_output_delay -clock clk @SETUP@ [all_outputs]
  set_load @LOAD@ [all_outputs]
}
# The clock reaching a submodule's clock port (an output once everted) is clock network, not
# a data path.
if {[llength [get_ports -quiet clk]]} {
  set_false_path -from [get_ports clk]
}
# The synchronous reset reaches every register of the design through one unbuffered net (the
# area-oriented mapping builds no buffer tree; a physical flow builds one, as for the clock):
# its paths are not timed.
if {[llength [get_ports -quiet rst]]} {
  set_false_path -from [get_ports rst]
}

puts "@@ftaccel worst"
report_checks -path_delay max -digits 4 -fields {net} -format full
if {@REG2REG@ && [llength [all_registers]]} {
  puts "@@ftaccel reg2reg"
  report_checks -path_delay max -digits 4 -fields {net} -format full \
    -from [all_registers -clock_pins] -to [all_registers -data_pins]
}

# Activity: given per input port, or on the cell pins driving a named net (a register's Q);
# the rest is propagated by OpenSTA from the inputs (whose default is set first).  The 2019
# set_power_activity fails on a port's own pin (it calls a missing get_pins_error): skipped.
proc ftaccel_activity {net act duty} {
  set p [get_ports -quiet $net]
  if {[llength $p] && [get_property $p direction] == "input"} {
    set_power_activity -input_ports $p -activity $act -duty $duty
    return
  }
  set n [get_nets -quiet $net]
  if {![llength $n]} {
    return
  }
  foreach d [get_pins -quiet -of_objects $n -filter "direction == output"] {
    catch {set_power_activity -pins $d -activity $act -duty $duty}
  }
}
if {@POWER@} {
  @ACTIVITY@
  puts "@@ftaccel power"
  report_power -digits 8
}
puts "@@ftaccel end"
