"""Built-in task kinds, shipped with Qortex so a fresh coordinator has work to hand out."""
