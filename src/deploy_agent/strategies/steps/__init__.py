"""Steps the strategies share: following an UpdateService and undoing it, the temporary service,
the listener's weights, the gates and the approval. A strategy module composes these; strategies
never import each other.
"""
