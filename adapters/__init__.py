"""Adapters behind the application ports: MongoDB, Pub/Sub, Firestore, files, fakes."""
