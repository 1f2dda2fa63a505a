"""The enhancer: super-resolution (ESRGAN's RRDBNet, the compact SRVGG net) and face restoration."""
