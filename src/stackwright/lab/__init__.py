"""Throwaway Debian hosts on this machine (systemd-nspawn), built from the inventory itself."""
