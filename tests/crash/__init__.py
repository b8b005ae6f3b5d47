"""The crash campaign: ``kill -9`` the coordinator and check every promise still holds."""
