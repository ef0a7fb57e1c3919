"""Storage of the latent state of every node, for numpy arrays and torch tensors alike."""

import numpy as np
import torch as th

from sb3_muzero.mcts.workspace import reusable


class LatentStore:
    """Latents of all nodes of a batch of trees, node-major: ``[N, B, ...]``.

    Node-major storage makes writing the latents of one simulation a contiguous copy.
    """

    def __init__(self, root_latent, num_nodes: int):
        """:param root_latent: [B, ...] latent of the roots (numpy array or torch tensor)"""
        self.is_torch = isinstance(root_latent, th.Tensor)
        if not self.is_torch:
            root_latent = np.asarray(root_latent)
        shape = (num_nodes, *root_latent.shape)
        device = str(root_latent.device) if self.is_torch else "numpy"
        self.latents, self.batch_index = reusable(
            ("latents", shape, str(root_latent.dtype), device), lambda: self._allocate(root_latent, shape)
        )
        self.latents[0] = root_latent

    def _allocate(self, root_latent, shape: tuple[int, ...]):
        """Storage [N, B, ...] like the root latent, and the batch index [B] used to gather from it."""
        if self.is_torch:
            return root_latent.new_empty(shape), th.arange(shape[1], device=root_latent.device)
        return np.empty(shape, dtype=root_latent.dtype), np.arange(shape[1])

    def like_latent(self, index_array):
        """A copy of ``index_array`` [B] as the latent's array kind: a torch tensor on the latent's device, or numpy."""
        if isinstance(index_array, th.Tensor):
            return index_array.to(self.latents.device, copy=True) if self.is_torch else index_array.cpu().numpy()
        if self.is_torch:
            return th.tensor(index_array, device=self.latents.device)
        return np.array(index_array)

    def gather(self, node_index):
        """:param node_index: [B] node of each tree; :return: [B, ...] the latents of those nodes"""
        flat = self.latents.reshape(-1, *self.latents.shape[2:])  # [N * B, ...], row = node * B + tree
        if self.is_torch:
            node_index = th.as_tensor(node_index, device=self.latents.device).long()
            return flat.index_select(0, node_index * self.batch_index.shape[0] + self.batch_index)
        return flat.take(node_index * self.batch_index.shape[0] + self.batch_index, axis=0)

    def store(self, node: int, latent) -> None:
        """Write the latents [B, ...] of node ``node`` of every tree."""
        self.latents[node] = latent
