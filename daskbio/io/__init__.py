"""Image input and output: lazy reading of TIFF, PNG/JPEG and (OME-)Zarr, and OME-Zarr writing.

``imread`` returns dask arrays that read pixels only in the tasks that need them;
``to_ome_zarr`` writes a multiscale OME-Zarr (NGFF 0.5) image with its label images, chunk
by chunk. Importing this package imports dask.array; ``import daskbio`` alone does not.
"""

from daskbio.io.ome_zarr import OmeZarrMetadata, read_ome_zarr_metadata, to_ome_zarr
from daskbio.io.read import imread

__all__ = ["OmeZarrMetadata", "imread", "read_ome_zarr_metadata", "to_ome_zarr"]
