"""The Yosys area flow and the published figures it is compared with."""
