"""MedMNIST v3 metadata for the 12 2D datasets, copied from `medmnist.INFO`.

Why a copy: the `medmnist` wheel pulls in PyTorch, and salm_jax's core must not
need it. These are plain facts (task, channels, label names, split sizes, and a
download URL and MD5 per image size), copied verbatim from `medmnist/info.py`
of medmnist 3.0.2 (https://github.com/MedMNIST/MedMNIST, Apache-2.0; data
CC BY 4.0 / CC BY-NC 4.0 as noted per dataset). `tests/test_data_info.py`
compares this copy with `medmnist.INFO` whenever `medmnist` can be imported.

MedMNIST names files `<flag>.npz` for 28 px and `<flag>_<size>.npz` for the
larger sizes; the keys `url`/`MD5` hold 28 px, `url_<size>`/`MD5_<size>` the
others. The helpers below hide that naming rule.
"""
from __future__ import annotations

from typing import Any, Mapping

MEDMNIST_VERSION = "3.0.2"
HOMEPAGE = "https://github.com/MedMNIST/MedMNIST/"
SIZES = (28, 64, 128, 224)

INFO: dict[str, dict[str, Any]] = {
  "pathmnist": {
    "python_class": "PathMNIST",
    "description": "The PathMNIST is based on a prior study for predicting survival from colorectal cancer histology slides, providing a dataset (NCT-CRC-HE-100K) of 100,000 non-overlapping image patches from hematoxylin & eosin stained histological images, and a test dataset (CRC-VAL-HE-7K) of 7,180 image patches from a different clinical center. The dataset is comprised of 9 types of tissues, resulting in a multi-class classification task. We resize the source images of 3×224×224 into 3×28×28, and split NCT-CRC-HE-100K into training and validation set with a ratio of 9:1. The CRC-VAL-HE-7K is treated as the test set.",
    "url": "https://zenodo.org/records/10519652/files/pathmnist.npz?download=1",
    "MD5": "a8b06965200029087d5bd730944a56c1",
    "url_64": "https://zenodo.org/records/10519652/files/pathmnist_64.npz?download=1",
    "MD5_64": "55aa9c1e0525abe5a6b9d8343a507616",
    "url_128": "https://zenodo.org/records/10519652/files/pathmnist_128.npz?download=1",
    "MD5_128": "ac42d08fb904d92c244187169d1fd1d9",
    "url_224": "https://zenodo.org/records/10519652/files/pathmnist_224.npz?download=1",
    "MD5_224": "2c51a510bcdc9cf8ddb2af93af1eadec",
    "task": "multi-class",
    "label": {
      "0": "adipose",
      "1": "background",
      "2": "debris",
      "3": "lymphocytes",
      "4": "mucus",
      "5": "smooth muscle",
      "6": "normal colon mucosa",
      "7": "cancer-associated stroma",
      "8": "colorectal adenocarcinoma epithelium"
    },
    "n_channels": 3,
    "n_samples": {
      "train": 89996,
      "val": 10004,
      "test": 7180
    },
    "license": "CC BY 4.0"
  },
  "chestmnist": {
    "python_class": "ChestMNIST",
    "description": "The ChestMNIST is based on the NIH-ChestXray14 dataset, a dataset comprising 112,120 frontal-view X-Ray images of 30,805 unique patients with the text-mined 14 disease labels, which could be formulized as a multi-label binary-class classification task. We use the official data split, and resize the source images of 1×1024×1024 into 1×28×28.",
    "url": "https://zenodo.org/records/10519652/files/chestmnist.npz?download=1",
    "MD5": "02c8a6516a18b556561a56cbdd36c4a8",
    "url_64": "https://zenodo.org/records/10519652/files/chestmnist_64.npz?download=1",
    "MD5_64": "9de6cd0b934ebb5b7426cfba5efbae16",
    "url_128": "https://zenodo.org/records/10519652/files/chestmnist_128.npz?download=1",
    "MD5_128": "db107e5590b27930b62dbaf558aebee3",
    "url_224": "https://zenodo.org/records/10519652/files/chestmnist_224.npz?download=1",
    "MD5_224": "45bd33e6f06c3e8cdb481c74a89152aa",
    "task": "multi-label, binary-class",
    "label": {
      "0": "atelectasis",
      "1": "cardiomegaly",
      "2": "effusion",
      "3": "infiltration",
      "4": "mass",
      "5": "nodule",
      "6": "pneumonia",
      "7": "pneumothorax",
      "8": "consolidation",
      "9": "edema",
      "10": "emphysema",
      "11": "fibrosis",
      "12": "pleural",
      "13": "hernia"
    },
    "n_channels": 1,
    "n_samples": {
      "train": 78468,
      "val": 11219,
      "test": 22433
    },
    "license": "CC BY 4.0"
  },
  "dermamnist": {
    "python_class": "DermaMNIST",
    "description": "The DermaMNIST is based on the HAM10000, a large collection of multi-source dermatoscopic images of common pigmented skin lesions. The dataset consists of 10,015 dermatoscopic images categorized as 7 different diseases, formulized as a multi-class classification task. We split the images into training, validation and test set with a ratio of 7:1:2. The source images of 3×600×450 are resized into 3×28×28.",
    "url": "https://zenodo.org/records/10519652/files/dermamnist.npz?download=1",
    "MD5": "0744692d530f8e62ec473284d019b0c7",
    "url_64": "https://zenodo.org/records/10519652/files/dermamnist_64.npz?download=1",
    "MD5_64": "b70a2f5635c6199aeaa28c31d7202e1f",
    "url_128": "https://zenodo.org/records/10519652/files/dermamnist_128.npz?download=1",
    "MD5_128": "2defd784463fa5243564e855ed717de1",
    "url_224": "https://zenodo.org/records/10519652/files/dermamnist_224.npz?download=1",
    "MD5_224": "8974907d8e169bef5f5b96bc506ae45d",
    "task": "multi-class",
    "label": {
      "0": "actinic keratoses and intraepithelial carcinoma",
      "1": "basal cell carcinoma",
      "2": "benign keratosis-like lesions",
      "3": "dermatofibroma",
      "4": "melanoma",
      "5": "melanocytic nevi",
      "6": "vascular lesions"
    },
    "n_channels": 3,
    "n_samples": {
      "train": 7007,
      "val": 1003,
      "test": 2005
    },
    "license": "CC BY-NC 4.0"
  },
  "octmnist": {
    "python_class": "OCTMNIST",
    "description": "The OCTMNIST is based on a prior dataset of 109,309 valid optical coherence tomography (OCT) images for retinal diseases. The dataset is comprised of 4 diagnosis categories, leading to a multi-class classification task. We split the source training set with a ratio of 9:1 into training and validation set, and use its source validation set as the test set. The source images are gray-scale, and their sizes are (384−1,536)×(277−512). We center-crop the images and resize them into 1×28×28.",
    "url": "https://zenodo.org/records/10519652/files/octmnist.npz?download=1",
    "MD5": "c68d92d5b585d8d81f7112f81e2d0842",
    "url_64": "https://zenodo.org/records/10519652/files/octmnist_64.npz?download=1",
    "MD5_64": "e229e9440236b774d9f0dfef9d07bdaf",
    "url_128": "https://zenodo.org/records/10519652/files/octmnist_128.npz?download=1",
    "MD5_128": "0a97e76651ace45c5d943ee3f65b63ae",
    "url_224": "https://zenodo.org/records/10519652/files/octmnist_224.npz?download=1",
    "MD5_224": "abc493b6d529d5de7569faaef2773ba3",
    "task": "multi-class",
    "label": {
      "0": "choroidal neovascularization",
      "1": "diabetic macular edema",
      "2": "drusen",
      "3": "normal"
    },
    "n_channels": 1,
    "n_samples": {
      "train": 97477,
      "val": 10832,
      "test": 1000
    },
    "license": "CC BY 4.0"
  },
  "pneumoniamnist": {
    "python_class": "PneumoniaMNIST",
    "description": "The PneumoniaMNIST is based on a prior dataset of 5,856 pediatric chest X-Ray images. The task is binary-class classification of pneumonia against normal. We split the source training set with a ratio of 9:1 into training and validation set and use its source validation set as the test set. The source images are gray-scale, and their sizes are (384−2,916)×(127−2,713). We center-crop the images and resize them into 1×28×28.",
    "url": "https://zenodo.org/records/10519652/files/pneumoniamnist.npz?download=1",
    "MD5": "28209eda62fecd6e6a2d98b1501bb15f",
    "url_64": "https://zenodo.org/records/10519652/files/pneumoniamnist_64.npz?download=1",
    "MD5_64": "8f4eceb4ccffa70c672198ea285246c6",
    "url_128": "https://zenodo.org/records/10519652/files/pneumoniamnist_128.npz?download=1",
    "MD5_128": "05b46931834c231683c68f40c47b2971",
    "url_224": "https://zenodo.org/records/10519652/files/pneumoniamnist_224.npz?download=1",
    "MD5_224": "d6a3c71de1b945ea11211b03746c1fe1",
    "task": "binary-class",
    "label": {
      "0": "normal",
      "1": "pneumonia"
    },
    "n_channels": 1,
    "n_samples": {
      "train": 4708,
      "val": 524,
      "test": 624
    },
    "license": "CC BY 4.0"
  },
  "retinamnist": {
    "python_class": "RetinaMNIST",
    "description": "The RetinaMNIST is based on the DeepDRiD challenge, which provides a dataset of 1,600 retina fundus images. The task is ordinal regression for 5-level grading of diabetic retinopathy severity. We split the source training set with a ratio of 9:1 into training and validation set, and use the source validation set as the test set. The source images of 3×1,736×1,824 are center-cropped and resized into 3×28×28.",
    "url": "https://zenodo.org/records/10519652/files/retinamnist.npz?download=1",
    "MD5": "bd4c0672f1bba3e3a89f0e4e876791e4",
    "url_64": "https://zenodo.org/records/10519652/files/retinamnist_64.npz?download=1",
    "MD5_64": "afda852cc34dcda56f86ad2b2457dbcc",
    "url_128": "https://zenodo.org/records/10519652/files/retinamnist_128.npz?download=1",
    "MD5_128": "e48e916a24454daf90583d4e6efb1a18",
    "url_224": "https://zenodo.org/records/10519652/files/retinamnist_224.npz?download=1",
    "MD5_224": "eae7e3b6f3fcbda4ae613ebdcbe35348",
    "task": "ordinal-regression",
    "label": {
      "0": "0",
      "1": "1",
      "2": "2",
      "3": "3",
      "4": "4"
    },
    "n_channels": 3,
    "n_samples": {
      "train": 1080,
      "val": 120,
      "test": 400
    },
    "license": "CC BY 4.0"
  },
  "breastmnist": {
    "python_class": "BreastMNIST",
    "description": "The BreastMNIST is based on a dataset of 780 breast ultrasound images. It is categorized into 3 classes: normal, benign, and malignant. As we use low-resolution images, we simplify the task into binary classification by combining normal and benign as positive and classifying them against malignant as negative. We split the source dataset with a ratio of 7:1:2 into training, validation and test set. The source images of 1×500×500 are resized into 1×28×28.",
    "url": "https://zenodo.org/records/10519652/files/breastmnist.npz?download=1",
    "MD5": "750601b1f35ba3300ea97c75c52ff8f6",
    "url_64": "https://zenodo.org/records/10519652/files/breastmnist_64.npz?download=1",
    "MD5_64": "742edef2a1fd1524b2efff4bd7ba9364",
    "url_128": "https://zenodo.org/records/10519652/files/breastmnist_128.npz?download=1",
    "MD5_128": "363e4b3f8d712e9b5de15470a2aaadf1",
    "url_224": "https://zenodo.org/records/10519652/files/breastmnist_224.npz?download=1",
    "MD5_224": "b56378a6eefa9fed602bb16d192d4c8b",
    "task": "binary-class",
    "label": {
      "0": "malignant",
      "1": "normal, benign"
    },
    "n_channels": 1,
    "n_samples": {
      "train": 546,
      "val": 78,
      "test": 156
    },
    "license": "CC BY 4.0"
  },
  "bloodmnist": {
    "python_class": "BloodMNIST",
    "description": "The BloodMNIST is based on a dataset of individual normal cells, captured from individuals without infection, hematologic or oncologic disease and free of any pharmacologic treatment at the moment of blood collection. It contains a total of 17,092 images and is organized into 8 classes. We split the source dataset with a ratio of 7:1:2 into training, validation and test set. The source images with resolution 3×360×363 pixels are center-cropped into 3×200×200, and then resized into 3×28×28.",
    "url": "https://zenodo.org/records/10519652/files/bloodmnist.npz?download=1",
    "MD5": "7053d0359d879ad8a5505303e11de1dc",
    "url_64": "https://zenodo.org/records/10519652/files/bloodmnist_64.npz?download=1",
    "MD5_64": "2b94928a2ae4916078ca51e05b6b800b",
    "url_128": "https://zenodo.org/records/10519652/files/bloodmnist_128.npz?download=1",
    "MD5_128": "adace1e0ed228fccda1f39692059dd4c",
    "url_224": "https://zenodo.org/records/10519652/files/bloodmnist_224.npz?download=1",
    "MD5_224": "b718ff6835fcbdb22ba9eacccd7b2601",
    "task": "multi-class",
    "label": {
      "0": "basophil",
      "1": "eosinophil",
      "2": "erythroblast",
      "3": "immature granulocytes(myelocytes, metamyelocytes and promyelocytes)",
      "4": "lymphocyte",
      "5": "monocyte",
      "6": "neutrophil",
      "7": "platelet"
    },
    "n_channels": 3,
    "n_samples": {
      "train": 11959,
      "val": 1712,
      "test": 3421
    },
    "license": "CC BY 4.0"
  },
  "tissuemnist": {
    "python_class": "TissueMNIST",
    "description": "We use the BBBC051, available from the Broad Bioimage Benchmark Collection. The dataset contains 236,386 human kidney cortex cells, segmented from 3 reference tissue specimens and organized into 8 categories. We split the source dataset with a ratio of 7:1:2 into training, validation and test set. Each gray-scale image is 32×32×7 pixels, where 7 denotes 7 slices. We take maximum values across the slices and resize them into 28×28 gray-scale images.",
    "url": "https://zenodo.org/records/10519652/files/tissuemnist.npz?download=1",
    "MD5": "ebe78ee8b05294063de985d821c1c34b",
    "url_64": "https://zenodo.org/records/10519652/files/tissuemnist_64.npz?download=1",
    "MD5_64": "123ece2eba09d0aa5d698fda57103344",
    "url_128": "https://zenodo.org/records/10519652/files/tissuemnist_128.npz?download=1",
    "MD5_128": "61b955355d7425a89687b06cca3ce0c2",
    "url_224": "https://zenodo.org/records/10519652/files/tissuemnist_224.npz?download=1",
    "MD5_224": "b077128c4a949f0a4eb01517f9037b9c",
    "task": "multi-class",
    "label": {
      "0": "Collecting Duct, Connecting Tubule",
      "1": "Distal Convoluted Tubule",
      "2": "Glomerular endothelial cells",
      "3": "Interstitial endothelial cells",
      "4": "Leukocytes",
      "5": "Podocytes",
      "6": "Proximal Tubule Segments",
      "7": "Thick Ascending Limb"
    },
    "n_channels": 1,
    "n_samples": {
      "train": 165466,
      "val": 23640,
      "test": 47280
    },
    "license": "CC BY 4.0"
  },
  "organamnist": {
    "python_class": "OrganAMNIST",
    "description": "The OrganAMNIST is based on 3D computed tomography (CT) images from Liver Tumor Segmentation Benchmark (LiTS). It is renamed from OrganMNIST_Axial (in MedMNIST v1) for simplicity. We use bounding-box annotations of 11 body organs from another study to obtain the organ labels. Hounsfield-Unit (HU) of the 3D images are transformed into gray-scale with an abdominal window. We crop 2D images from the center slices of the 3D bounding boxes in axial views (planes). The images are resized into 1×28×28 to perform multi-class classification of 11 body organs. 115 and 16 CT scans from the source training set are used as training and validation set, respectively. The 70 CT scans from the source test set are treated as the test set.",
    "url": "https://zenodo.org/records/10519652/files/organamnist.npz?download=1",
    "MD5": "68e3f8846a6bd62f0c9bf841c0d9eacc",
    "url_64": "https://zenodo.org/records/10519652/files/organamnist_64.npz?download=1",
    "MD5_64": "2dcccc29b88e6da5a01161ef20cda288",
    "url_128": "https://zenodo.org/records/10519652/files/organamnist_128.npz?download=1",
    "MD5_128": "eeae80d0a227a8d099027e1b3cfd3b60",
    "url_224": "https://zenodo.org/records/10519652/files/organamnist_224.npz?download=1",
    "MD5_224": "50747347e05c87dd3aaf92c49f9f3170",
    "task": "multi-class",
    "label": {
      "0": "bladder",
      "1": "femur-left",
      "2": "femur-right",
      "3": "heart",
      "4": "kidney-left",
      "5": "kidney-right",
      "6": "liver",
      "7": "lung-left",
      "8": "lung-right",
      "9": "pancreas",
      "10": "spleen"
    },
    "n_channels": 1,
    "n_samples": {
      "train": 34561,
      "val": 6491,
      "test": 17778
    },
    "license": "CC BY 4.0"
  },
  "organcmnist": {
    "python_class": "OrganCMNIST",
    "description": "The OrganCMNIST is based on 3D computed tomography (CT) images from Liver Tumor Segmentation Benchmark (LiTS). It is renamed from OrganMNIST_Coronal (in MedMNIST v1) for simplicity. We use bounding-box annotations of 11 body organs from another study to obtain the organ labels. Hounsfield-Unit (HU) of the 3D images are transformed into gray-scale with an abdominal window. We crop 2D images from the center slices of the 3D bounding boxes in coronal views (planes). The images are resized into 1×28×28 to perform multi-class classification of 11 body organs. 115 and 16 CT scans from the source training set are used as training and validation set, respectively. The 70 CT scans from the source test set are treated as the test set.",
    "url": "https://zenodo.org/records/10519652/files/organcmnist.npz?download=1",
    "MD5": "b9ceb9546e10131b32923c5bbeaea2b1",
    "url_64": "https://zenodo.org/records/10519652/files/organcmnist_64.npz?download=1",
    "MD5_64": "3ce34a8724ea6f548e6db4744d03b6a9",
    "url_128": "https://zenodo.org/records/10519652/files/organcmnist_128.npz?download=1",
    "MD5_128": "773c1f009daa3fe5d9a2a201b2a7ed94",
    "url_224": "https://zenodo.org/records/10519652/files/organcmnist_224.npz?download=1",
    "MD5_224": "050f5e875dc056f6768abf94ec9995d1",
    "task": "multi-class",
    "label": {
      "0": "bladder",
      "1": "femur-left",
      "2": "femur-right",
      "3": "heart",
      "4": "kidney-left",
      "5": "kidney-right",
      "6": "liver",
      "7": "lung-left",
      "8": "lung-right",
      "9": "pancreas",
      "10": "spleen"
    },
    "n_channels": 1,
    "n_samples": {
      "train": 12975,
      "val": 2392,
      "test": 8216
    },
    "license": "CC BY 4.0"
  },
  "organsmnist": {
    "python_class": "OrganSMNIST",
    "description": "The OrganSMNIST is based on 3D computed tomography (CT) images from Liver Tumor Segmentation Benchmark (LiTS). It is renamed from OrganMNIST_Sagittal (in MedMNIST v1) for simplicity. We use bounding-box annotations of 11 body organs from another study to obtain the organ labels. Hounsfield-Unit (HU) of the 3D images are transformed into gray-scale with an abdominal window. We crop 2D images from the center slices of the 3D bounding boxes in sagittal views (planes). The images are resized into 1×28×28 to perform multi-class classification of 11 body organs. 115 and 16 CT scans from the source training set are used as training and validation set, respectively. The 70 CT scans from the source test set are treated as the test set.",
    "url": "https://zenodo.org/records/10519652/files/organsmnist.npz?download=1",
    "MD5": "9ab87b696fb54e2a387ebe992d6ed5f1",
    "url_64": "https://zenodo.org/records/10519652/files/organsmnist_64.npz?download=1",
    "MD5_64": "53a6d115339d874c25e309a994ff46d3",
    "url_128": "https://zenodo.org/records/10519652/files/organsmnist_128.npz?download=1",
    "MD5_128": "ded0c5fa01a95dc4978b956f613e9b8e",
    "url_224": "https://zenodo.org/records/10519652/files/organsmnist_224.npz?download=1",
    "MD5_224": "b354719e553fbbb2513d5533f52a4cb1",
    "task": "multi-class",
    "label": {
      "0": "bladder",
      "1": "femur-left",
      "2": "femur-right",
      "3": "heart",
      "4": "kidney-left",
      "5": "kidney-right",
      "6": "liver",
      "7": "lung-left",
      "8": "lung-right",
      "9": "pancreas",
      "10": "spleen"
    },
    "n_channels": 1,
    "n_samples": {
      "train": 13932,
      "val": 2452,
      "test": 8827
    },
    "license": "CC BY 4.0"
  }
}

FLAGS: tuple[str, ...] = tuple(INFO)


def info_for(flag: str) -> Mapping[str, Any]:
  """MedMNIST's INFO entry of `flag`, or a ValueError listing the known flags."""
  if flag not in INFO:
    raise ValueError(f"Unknown MedMNIST dataset {flag!r}; known 2D datasets: "
                     f"{', '.join(FLAGS)} (or 'phantom', or a path to a .npz file).")
  return INFO[flag]


def _size_suffix(size: int) -> str:
  if size not in SIZES:
    raise ValueError(f"MedMNIST image size must be one of {SIZES}, got {size!r}.")
  return "" if size == 28 else f"_{size}"


def file_name(flag: str, size: int = 28) -> str:
  """MedMNIST's own file name: 'breastmnist.npz', 'breastmnist_64.npz', ..."""
  info_for(flag)
  return f"{flag}{_size_suffix(size)}.npz"


def url(flag: str, size: int = 28) -> str:
  return info_for(flag)[f"url{_size_suffix(size)}"]


def md5(flag: str, size: int = 28) -> str:
  return info_for(flag)[f"MD5{_size_suffix(size)}"]


def num_classes(flag: str) -> int:
  """Classes of a single-label task, or labels of the multi-label task."""
  return len(info_for(flag)["label"])
