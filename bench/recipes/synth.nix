# `package.file` for synth.toml: the root of the synthetic closure. The
# offline set passed in is not needed; nothing here is compiled.
{ armorred }:
import ../synthetic.nix { }
