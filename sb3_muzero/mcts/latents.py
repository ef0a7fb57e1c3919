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
        key = ("latents", shape, str(root_latent.dtype), device)
        self.latents, self.rows, self.batch_index, self.device_batch_index = reusable(
            key, lambda: self._allocate(root_latent, shape)
        )
        self.latents[0] = root_latent
        self.flat = self.latents.reshape(-1, *self.latents.shape[2:])  # [N * B, ...], row = node * B + tree
        self.batch_size = shape[1]

    def _allocate(self, root_latent, shape: tuple[int, ...]):
        """Storage [N, B, ...] like the root latent, and what gather needs: a buffer [B] int64 for the row numbers
        of host node indices, the batch index [B] on the host and, for torch latents, on their device (else None)."""
        batch_size = shape[1]
        rows, batch_index = np.empty(batch_size, dtype=np.int64), np.arange(batch_size)
        if not self.is_torch:
            return np.empty(shape, dtype=root_latent.dtype), rows, batch_index, None
        return root_latent.new_empty(shape), rows, batch_index, th.arange(batch_size, device=root_latent.device)

    def like_latent(self, index_array):
        """A copy of ``index_array`` [B] as the latent's array kind: a torch tensor on the latent's device, or numpy."""
        if isinstance(index_array, th.Tensor):
            return index_array.to(self.latents.device, copy=True) if self.is_torch else index_array.cpu().numpy()
        if self.is_torch:
            return th.tensor(index_array, device=self.latents.device)
        return np.array(index_array)

    def gather(self, node_index):
        """:param node_index: [B] node of each tree: a numpy array, or a torch tensor on the latent's device;
        :return: [B, ...] their latents"""
        if not isinstance(node_index, np.ndarray):  # the CUDA backend's selection, on the latent's GPU
            rows = node_index.long() * self.batch_size + self.device_batch_index
            return self.flat.index_select(0, rows)
        rows = np.multiply(node_index, self.batch_size, out=self.rows)  # no allocation: a call per simulation
        rows += self.batch_index
        if self.is_torch:
            return self.flat.index_select(0, th.from_numpy(rows).to(self.flat.device))
        return self.flat.take(rows, axis=0)

    def store(self, node: int, latent) -> None:
        """Write the latents [B, ...] of node ``node`` of every tree."""
        self.latents[node] = latent
