//! Gallery: uploaded images, characters (seed 003) with likes, ratings and variants,
//! collections of characters, vendor albums of images, public galleries and the showcase feed.
//!
//! Privacy in one sentence: a private image, character, collection or album is seen by its
//! owner and admins only, wherever it would appear (root fields and nested fields alike).

pub mod graphql;
pub mod loaders;
pub mod model;
pub mod service;
pub mod upload;

use crate::db_enum;

db_enum! {
    /// The visual style of a character.
    pub enum StyleType {
        Anime => "anime",
        Realistic => "realistic",
        Cartoon => "cartoon",
        Fantasy => "fantasy",
        Cyberpunk => "cyberpunk",
        Steampunk => "steampunk",
        Minimalist => "minimalist",
        Comic => "comic",
        Portrait => "portrait",
        Artistic => "artistic",
    }
}

db_enum! {
    /// Where a character's generation stands.
    pub enum CharacterStatus {
        Pending => "pending",
        Processing => "processing",
        Completed => "completed",
        Failed => "failed",
        Cancelled => "cancelled",
    }
}

db_enum! {
    /// The licence under which a character may be reused.
    pub enum LicenseType {
        Standard => "standard",
        Commercial => "commercial",
        CreativeCommons => "creative_commons",
    }
}

db_enum! {
    /// How a variant differs from its parent character.
    pub enum VariantType {
        Original => "original",
        StyleTransfer => "style_transfer",
        PoseChange => "pose_change",
        OutfitChange => "outfit_change",
        ExpressionChange => "expression_change",
    }
}

db_enum! {
    /// Where an image came from.
    pub enum ImageKind {
        /// Uploaded by a user.
        Upload => "upload",
        /// Produced by a generation job.
        Result => "result",
        /// Uploaded by a vendor for their albums.
        Vendor => "vendor",
    }
}
